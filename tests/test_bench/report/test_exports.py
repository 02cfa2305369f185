"""Exports read by the real clients: pytest-benchmark's `compare` on two exported runs, and the shape
github-action-benchmark's customSmallerIsBetter reads; statistics exact from the rows' per-round times,
approximate (and said to be) where a row kept none."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, StrictStr
from support.bench_cli import bench
from support.paths import REPO
from support.suites import tiny_suite

from bench.report.exports import APPROXIMATE_BEFORE_V4, UNKNOWN_CALLS, github_action_benchmark, pytest_benchmark_json
from bench.store.results import load_run

SUITE = tiny_suite(name="exported", kernels={"batch": [4], "density": [0.5], "masks": ["out"]},
                   models={"policies": ["reinforce"], "batches": [8]})
BEFORE_V4 = REPO / "results" / "runs" / "cpu-20261204-205105"  # results schema version 3


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Two runs of one tiny suite (one kernel case, one model), the second reusing the first's checkpoint."""
    root = tmp_path_factory.mktemp("exports")
    (root / "s.yaml").write_text(SUITE)
    for _ in range(2):
        proc = bench("run", "s.yaml", "--results", "res", "--quiet", cwd=root)
        assert proc.returncode == 0, proc.stderr
    return root, sorted((root / "res" / "runs").iterdir())


def test_stats_are_pytest_benchmarks_own_over_the_kept_rounds(two_runs):
    _, (run_dir, _) = two_runs
    run = load_run(run_dir)
    exported = pytest_benchmark_json(run)
    (row,) = run.kernel_rows
    kernel = [b for b in exported["benchmarks"] if b["extra_info"].get("case_id") == row.case_id]
    assert {b["params"]["provider"] for b in kernel} == {c.provider for c in row.checks if row.metric(c.provider, "time")}
    for b in kernel:
        kept = next(s for s in row.samples if s.provider == b["params"]["provider"])
        stats = b["stats"]
        assert stats["data"] == kept.seconds and stats["rounds"] == len(kept.seconds) == 3  # the suite's repeats
        assert stats["median"] == statistics.median(kept.seconds) == row.metric(kept.provider, "time").median
        assert stats["min"] == min(kept.seconds) and stats["max"] == max(kept.seconds)
        assert stats["iterations"] == kept.calls >= 1 and "approximate" not in b["extra_info"]
    ours = next(b for b in kernel if b["params"]["provider"] == "ours")
    assert ours["extra_info"]["speedup"] == row.metric("ours", "speedup").median
    (model,) = run.model_rows
    timed = [b for b in exported["benchmarks"] if b["extra_info"].get("model") == model.name]
    assert {(b["params"]["provider"], b["params"]["batch"]) for b in timed} == {(s.provider, s.batch) for s in model.samples}
    assert all(b["extra_info"]["test_error"] == model.test_error and "approximate" not in b["extra_info"] for b in timed)
    assert exported["commit_info"]["id"] == run.env["git_commit"].removesuffix("-dirty")
    assert exported["machine_info"]["python_version"] == run.env["python"]


def test_pytest_benchmark_compare_reads_two_exports(two_runs):
    root, runs = two_runs
    files = []
    for i, run_dir in enumerate(runs):
        out = root / f"export{i}.json"
        proc = bench("export", run_dir, "--format", "pytest-benchmark", "--out", out, cwd=root)
        assert proc.returncode == 0, proc.stderr
        files.append(out)
    client = Path(sys.executable).with_name("py.test-benchmark")  # pytest-benchmark's own command line
    shown = subprocess.run([str(client), "compare", *map(str, files), "--group-by=fullname", "--columns=median,iqr,rounds"],
                           capture_output=True, text=True, cwd=root, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    (row,) = load_run(runs[0]).kernel_rows
    assert f"{row.case_id}[ours]" in shown.stdout and f"{row.case_id}[dense]" in shown.stdout
    assert "export0)" in shown.stdout and "export1)" in shown.stdout  # each run's rows, named by its file


class ActionEntry(BaseModel):
    """An entry of github-action-benchmark's customSmallerIsBetter list, as its README defines it."""

    model_config = ConfigDict(extra="forbid")
    name: StrictStr
    unit: StrictStr
    value: StrictFloat | StrictInt
    range: StrictStr | None = None
    extra: StrictStr | None = None


def test_the_action_format_is_the_list_the_action_reads(two_runs):
    root, (run_dir, _) = two_runs
    proc = bench("export", run_dir, "--format", "github-action-benchmark", "--out", root / "action.json", cwd=root)
    assert proc.returncode == 0, proc.stderr
    entries = json.loads((root / "action.json").read_text())
    assert isinstance(entries, list) and entries
    for entry in entries:
        ActionEntry.model_validate(entry)
        assert entry["value"] > 0 and entry["unit"] == "us"
    assert len({e["name"] for e in entries}) == len(entries)  # the action keys its history by name


def test_a_row_without_rounds_is_exported_approximate_and_says_so():
    run = load_run(BEFORE_V4)
    exported = pytest_benchmark_json(run)
    kernels = [b for b in exported["benchmarks"] if "case_id" in b["extra_info"]]
    assert kernels
    for b in kernels:
        assert b["extra_info"]["approximate"] == APPROXIMATE_BEFORE_V4 and "data" not in b["stats"]
    # a model row kept its rounds since version 3, but not how many calls each averaged
    models = [b for b in exported["benchmarks"] if b["params"].get("provider") == "ours" and "model" in b["extra_info"]]
    assert models and all(b["extra_info"]["approximate"] == UNKNOWN_CALLS and b["stats"]["data"] for b in models)
    row = next(r for r in run.kernel_rows if r.status == "ok")
    ours = next(b for b in exported["benchmarks"] if b["name"] == f"{row.case_id}[ours]")
    assert ours["stats"]["median"] == row.metric("ours", "time").median and ours["stats"]["rounds"] == row.rounds
    assert all("approximate" in e["extra"] for e in github_action_benchmark(run))
