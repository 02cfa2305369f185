"""Contention detection with a real busy process: measured, flagged in rows, env and reports, waited out."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest
from support.bench_cli import bench
from support.suites import tiny_suite

from bench.machine.contention import BUSY_CORES, Load, busy_process, measure_load, run_cpus

pytestmark = pytest.mark.alone  # timings or the machine's load: never beside other tests (pyproject)

BUSY = {"batch": [4, 64], "shape": [{"in_features": 256, "out_features": 256}], "block_size": [64], "density": [0.5],
        "masks": None}
SUITE = tiny_suite(name="busy", repeats=5, threads=2, kernels=BUSY)


@pytest.fixture(autouse=True)
def real_load_window(monkeypatch):
    """The load window rows are measured over in a real run (tests/conftest.py shortens it to none)."""
    monkeypatch.delenv("CONDBENCH_LOAD_WINDOW_S")


def test_flags_follow_the_measured_load():
    cpus = len(run_cpus())
    assert Load(0.0, 0.0, 1.0).flags(threads=1) == []
    assert Load(BUSY_CORES + 0.05, 0.0, 1.0).flags(threads=1) == ["busy"]
    assert "oversubscribed" in Load(1.0, 0.0, 1.0).flags(threads=cpus)
    assert "steal" in Load(0.0, 0.5, 1.0).flags(threads=1)
    assert Load(0.0, 0.0, 1.0).flags(threads=1, dense_spread=0.5) == ["noisy"]


def test_a_real_busy_process_is_measured():
    hog = busy_process()
    try:
        time.sleep(0.3)
        load = measure_load(1.5)
    finally:
        hog.kill()
        hog.wait()
    assert load.others_cores >= 0.7, load
    if len(run_cpus()) <= 2:
        assert "oversubscribed" in load.flags(threads=len(run_cpus()))


@pytest.mark.skipif(len(run_cpus()) < 2, reason="needs two CPUs for a two-thread run")
def test_a_run_beside_a_busy_process_warns_flags_its_rows_and_shows_a_banner(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    hog = busy_process()
    try:
        proc = bench("run", "s.yaml", "--results", "res", cwd=tmp_path)
    finally:
        hog.kill()
        hog.wait()
    assert proc.returncode == 0, proc.stderr
    assert "warning" in proc.stderr and "other processes are using" in proc.stderr
    (folder,) = (tmp_path / "res" / "runs").iterdir()
    env = json.loads((folder / "env.json").read_text())
    assert env["load_at_start"]["others_cores"] >= 0.5
    rows = [json.loads(line) for line in (folder / "kernels.jsonl").read_text().splitlines()]
    assert all(r["contended"] and r["others_cores"] > 0.5 for r in rows), rows
    assert all("oversubscribed" in r["load_flags"] or "busy" in r["load_flags"] for r in rows)
    assert "busy machine" in proc.stdout and "! " in proc.stdout
    assert "Busy machine." in (folder / "report" / "index.html").read_text()


@pytest.mark.skipif(len(run_cpus()) < 2, reason="needs a second CPU to free")
def test_free_cores_only_runs_on_the_cores_left_free(tmp_path):
    (tmp_path / "s.yaml").write_text(SUITE)
    hog = busy_process()
    try:
        proc = bench("run", "s.yaml", "--results", "res", "--quiet", "--free-cores-only", cwd=tmp_path)
    finally:
        hog.kill()
        hog.wait()
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "res" / "runs").iterdir()
    env = json.loads((folder / "env.json").read_text())
    assert env["load_at_start"]["threads_requested"] == 2
    assert env["load_at_start"]["threads"] == env["torch_threads"] == len(run_cpus()) - 1


def test_wait_quiet_waits_for_the_neighbour_to_leave(tmp_path):
    """The neighbour stays until the run says it waits, then leaves: no race between a neighbour's fixed
    lifetime and how long the run takes to start on a loaded machine."""
    (tmp_path / "s.yaml").write_text(tiny_suite(name="busy", repeats=5, threads=1, kernels=BUSY))
    hog = busy_process()
    run = subprocess.Popen([sys.executable, "-m", "bench", "run", "s.yaml", "--results", "res", "--quiet",
                            "--wait-quiet", "120"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        waiting = run.stderr.readline()
    finally:
        hog.kill()
        hog.wait()
    rest = run.communicate(timeout=300)[1]
    assert "waiting for a quiet machine" in waiting, waiting + rest
    assert run.returncode == 0, rest
    (folder,) = (tmp_path / "res" / "runs").iterdir()
    env = json.loads((folder / "env.json").read_text())
    assert env["load_at_start"]["others_cores"] < BUSY_CORES


def test_the_busy_neighbour_dies_with_the_process_that_started_it():
    """A killed `bench power --busy-core` must not leave a core spinning for an hour."""
    script = "from bench.machine.contention import busy_process; import time\nprint(busy_process().pid, flush=True); time.sleep(600)"
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE:
        time.sleep(0.1)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE
