"""Sweeps as scheduler jobs through submitit's local executor, in real processes: one launch that is killed
twice and still ends as the plain run's cases merged from its shards (a job killed midway resubmitted onto
what it had finished, a killed launch resumed with only its unfinished shard run again)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from support.bench_cli import bench
from support.suites import tiny_suite

from bench.plan.cases import kernel_cases
from bench.plan.suite import load_suite
from bench.store.results import load_run, read_rows

pytestmark = pytest.mark.slow

# 24 cases in two shards of a few seconds each: long enough for a job to be killed midway.
KILL = tiny_suite(name="kill", repeats=10, kernels={"batch": [2, 3, 33, 40], "density": [0.25, 0.5, 0.75],
                                                    "shape": [{"in_features": 64, "out_features": 64}]})


def launch_record(results: Path) -> tuple[Path, dict]:
    (folder,) = (results / "launches").iterdir()
    return folder, json.loads((folder / "launch.json").read_text())


def rows_in(run: Path) -> int:
    path = run / "kernels.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def kill_job(pid: str) -> None:
    """SIGKILL a process and all under it: a local job (submitit's controller, whose pid is the job's id,
    and the worker it started), or the launcher with its jobs."""
    top = psutil.Process(int(pid))
    for process in [top, *top.children(recursive=True)]:
        process.kill()


def wait_for(condition, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_a_killed_job_is_resubmitted_and_a_killed_launch_resumes_only_its_unfinished_shard(tmp_path):
    """One launch of two shards, killed twice: shard 0's job midway (the launcher resubmits it onto the
    folder it had started), then the launcher with shard 1's job (as when a login node goes away), and
    `--resume` runs shard 1 alone."""
    (tmp_path / "s.yaml").write_text(KILL)
    launcher = subprocess.Popen([sys.executable, "-m", "bench", "run", "s.yaml", "--launcher", "local", "--shards", "2",
                                 "--results", "res", "--quiet"], cwd=tmp_path, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    wait_for(lambda: any((tmp_path / "res").glob("launches/*/launch.json")))
    wait_for(lambda: launch_record(tmp_path / "res")[1]["shards"][0]["jobs"])
    folder, record = launch_record(tmp_path / "res")
    first, second = (Path(shard["run"]) for shard in record["shards"])
    wait_for(lambda: rows_in(first) >= 1)
    kill_job(record["shards"][0]["jobs"][0])
    assert rows_in(first) < 12, "the shard finished before it could be killed: make KILL longer"

    wait_for(lambda: len(launch_record(tmp_path / "res")[1]["shards"][1]["jobs"]) == 1)  # shard 0 finished
    wait_for(lambda: rows_in(second) >= 1)
    kill_job(str(launcher.pid))
    _, err = launcher.communicate()
    assert "ended without finishing" in err and "resubmitting" in err
    assert rows_in(second) < 12, "the shard finished before it could be killed: make KILL longer"
    first_rows = (first / "kernels.jsonl").read_bytes()
    done = [r["case_id"] for r in read_rows(first / "kernels.jsonl", "case_id")]
    assert len(done) == len(set(done)) == 12  # the second job resumed the first's folder: no case twice

    resumed = bench("run", "--resume", folder, "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    _, record = launch_record(tmp_path / "res")
    assert [len(shard["jobs"]) for shard in record["shards"]] == [2, 2]  # shard 0 was not run again
    assert (first / "kernels.jsonl").read_bytes() == first_rows

    # the shards merged are the plain run's cases, each once; each shard's environment is the one its first
    # job measured (the job resubmitted onto the folder keeps it)
    merged = load_run(Path(record["merged"]))
    planned = [c.case_id for c in kernel_cases(load_suite(tmp_path / "s.yaml"))]
    assert sorted(r.case_id for r in merged.kernel_rows) == sorted(planned) and len(planned) == 24
    assert all(r.status == "ok" for r in merged.kernel_rows)
    shard_envs = sorted(merged.env["shard_envs"], key=lambda e: e["shard"][0])
    assert [e["shard"][0] for e in shard_envs] == [0, 1]
    for shard, env in zip(record["shards"], shard_envs):
        assert env["hostname"] and env["job_id"] == shard["jobs"][0]
    assert "2 shard(s) on 1 machine(s) merged" in resumed.stdout
    assert "measured on 1 machine(s)" in (Path(record["merged"]) / "report" / "index.html").read_text()
    again = bench("run", "--resume", folder, cwd=tmp_path)
    assert again.returncode == 2 and "this launch finished" in again.stderr
