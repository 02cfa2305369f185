"""A run folder with real processes: killed at any point then resumed, every case exactly once; one writer
at a time; runs started in the same second get folders of their own; nothing outside --results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.suites import tiny_suite

from bench.core.errors import UserError
from bench.store.results import read_rows
from bench.store.run_folder import create_run_folder, owned, writer_of

# 24 quick cases: long enough to be killed midway, short enough for CI.
SUITE = tiny_suite(name="kill", repeats=5, kernels={"batch": [2, 3, 33, 40], "density": [0.25, 0.5, 0.75],
                                                   "shape": [{"in_features": 64, "out_features": 64}]})
CASES = 24


def start(*args, cwd: Path, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "CONDBENCH_NATIVE": "0", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "bench", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def wait_for_rows(results: Path, count: int) -> None:
    runs = results / "runs"
    wait_for(lambda: runs.exists() and any(rows_in(p) >= count for p in runs.iterdir()))


def rows_in(folder: Path) -> int:
    path = folder / "kernels.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def run_folder_of(results: Path) -> Path:
    (folder,) = [p for p in (results / "runs").iterdir() if not p.name.startswith(".")]
    return folder


def case_ids(folder: Path) -> list[str]:
    return [r["case_id"] for r in read_rows(folder / "kernels.jsonl", "case_id")]


@pytest.mark.slow
def test_sigkill_midway_then_resume_runs_every_case_exactly_once(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    proc = start("run", "s.yaml", "--results", "res", "--quiet", cwd=tmp_path)
    wait_for_rows(tmp_path / "res", 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    folder = run_folder_of(tmp_path / "res")
    done = rows_in(folder)
    assert 3 <= done < CASES
    # A kill during a write leaves the last row unfinished: cut it in half as such a kill would.
    raw = (folder / "kernels.jsonl").read_bytes()
    last_start = raw.rstrip(b"\n").rfind(b"\n") + 1
    (folder / "kernels.jsonl").write_bytes(raw[: last_start + (len(raw) - last_start) // 2])
    resumed = start("run", "--resume", folder, "--results", "res", "--quiet", cwd=tmp_path)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert "dropped an unfinished last row" in err
    ids = case_ids(folder)
    assert len(ids) == CASES and len(set(ids)) == CASES


@pytest.mark.slow
def test_killed_before_its_environment_was_measured_the_run_resumes(tmp_path):
    """The window a kill used to break: the folder exists, env.json is not measured yet (here the first
    C++ build, into an empty extension cache, is what takes the time)."""
    (tmp_path / "s.yaml").write_text(SUITE)
    cache = tmp_path / "ext"
    proc = start("run", "s.yaml", "--results", "res", "--quiet", cwd=tmp_path,
                 env_extra={"CONDBENCH_NATIVE": "1", "TORCH_EXTENSIONS_DIR": str(cache)})
    wait_for(lambda: cache.exists() and any(cache.iterdir()))  # the build has started
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    folder = run_folder_of(tmp_path / "res")
    assert rows_in(folder) == 0 and json.loads((folder / "env.json").read_text())["measured"] is False
    # The build died with its parent: nothing compiles into the cache any more.
    wait_for(lambda: not _processes_mentioning(str(cache)), timeout=30)
    resumed = start("run", "--resume", folder, "--results", "res", "--quiet", cwd=tmp_path)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    ids = case_ids(folder)
    assert len(ids) == CASES and len(set(ids)) == CASES
    env = json.loads((folder / "env.json").read_text())
    assert env["measured"] is True and env["copy_bandwidth_Bps"]["cpu"] > 0


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_a_second_writer_is_refused_and_no_case_runs_twice(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    first = start("run", "s.yaml", "--results", "res", "--quiet", cwd=tmp_path)
    wait_for_rows(tmp_path / "res", 1)
    folder = run_folder_of(tmp_path / "res")
    first.send_signal(signal.SIGSTOP)  # paused mid-run, holding its lock, however fast the machine is
    try:
        second = start("run", "--resume", folder, "--results", "res", "--quiet", cwd=tmp_path)
        _, err = second.communicate(timeout=120)
        # Reading a run being written: a merge is refused, a report says it is of part of the run.
        merge = start("merge", folder, "--out", tmp_path / "m", cwd=tmp_path)
        _, merge_err = merge.communicate(timeout=120)
        assert merge.returncode == 2 and "is still writing this run" in merge_err and not (tmp_path / "m").exists()
        report = start("report", folder, "--out", tmp_path / "rep", cwd=tmp_path)
        _, report_err = report.communicate(timeout=300)
        assert report.returncode == 0 and "covers the cases finished so far" in report_err
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2 and "is writing this run" in err and f"pid {first.pid}" in err
    assert len(err.strip().splitlines()) == 1
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    ids = case_ids(folder)
    assert len(ids) == CASES and len(set(ids)) == CASES


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path):
    folders = [create_run_folder(tmp_path, "same", "name: same\n", (0, 1)) for _ in range(3)]
    assert len(set(folders)) == 3 and all(f.parent == tmp_path / "runs" for f in folders)
    assert all((f / "suite.yaml").read_text() == "name: same\n" for f in folders)
    assert not [p for p in (tmp_path / "runs").iterdir() if p.name.startswith(".new-")]  # no staging left


def test_the_lock_refuses_a_second_holder_and_dies_with_the_first(tmp_path):
    folder = create_run_folder(tmp_path, "t", "name: t\n", (0, 1))
    assert writer_of(folder) is None
    with owned(folder):
        assert writer_of(folder) == f"pid {os.getpid()}"
    assert writer_of(folder) is None
    with owned(folder), pytest.raises(UserError, match=f"pid {os.getpid()} is writing this run"), owned(folder):
        pass
    with owned(folder):  # released on exit
        pass


@pytest.mark.parametrize("name", ["../evil", "/abs", "a/b", "..", ""])
def test_no_suite_name_places_a_run_outside_results(tmp_path, name):
    """Suites refuse such names already; the folder code does not rely on it."""
    runs = tmp_path / "res" / "runs"
    try:
        made = [create_run_folder(tmp_path / "res", name, "x", (0, 1))]
    except UserError as exc:
        assert "outside" in str(exc)
        made = []
    assert list(tmp_path.iterdir()) == [tmp_path / "res"] and list(runs.iterdir()) == made


def test_an_environment_says_whether_it_was_measured_and_older_ones_are_read_by_their_bandwidth():
    from bench.store.run_folder import measured

    assert measured({"measured": True}) and not measured({"suite": "s", "shard": [0, 1], "measured": False})
    # written before the field: measured where the copy bandwidth (written with the peaks) is there
    assert measured({"copy_bandwidth_Bps": {"cpu": 1e10}}) and not measured({"suite": "s", "shard": [0, 1]})
