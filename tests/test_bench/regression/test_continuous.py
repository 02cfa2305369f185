"""The regression check: base and head timed in alternating processes, judged by threshold and t-test."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from support.bench_cli import bench
from support.suites import tiny_suite

from bench.core.errors import UserError
from bench.regression.continuous import ALPHA, judge, process_order, verdict
from bench.regression.power import rates
from bench.regression.revision import exported_revision, resolve_commit

# Not `alone`: the runs these tests start do time, but no test reads what the timings say (a verdict either
# way passes), so a neighbour may slow them without failing them.

TINY_SUITE = tiny_suite(kernels={"batch": [32], "shape": [{"in_features": 256, "out_features": 256}], "block_size": [64],
                                  "density": [0.25], "masks": None})


def tables(speedups: dict[str, list[float]], status: dict[str, str] | None = None) -> list[pd.DataFrame]:
    """One kernel table per process from each case's per-process speedups."""
    processes = len(next(iter(speedups.values())))
    return [pd.DataFrame([{"case_id": case, "status": (status or {}).get(case, "ok"), "speedup": values[i]}
                          for case, values in speedups.items()]) for i in range(processes)]


def test_processes_alternate_and_rotate():
    assert process_order(["base", "head"], 3) == ["base", "head", "head", "base", "base", "head"]
    assert process_order(["a", "b", "c"], 3) == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]


def test_a_clear_drop_is_a_regression_and_noise_is_not():
    base = tables({"slow": [2.00, 2.04, 1.98], "noisy": [1.2, 1.3, 1.1], "same": [1.5, 1.51, 1.49]})
    head = tables({"slow": [1.60, 1.62, 1.58], "noisy": [0.9, 1.3, 1.0], "same": [1.5, 1.52, 1.48]})
    judged = judge(base, head, threshold=0.10).set_index("case_id")
    assert judged.loc["slow", "verdict"] == "regression"
    assert judged.loc["slow", "change"] == pytest.approx(-0.2, abs=0.01)
    assert judged.loc["slow", "change_low"] < judged.loc["slow", "change"] < judged.loc["slow", "change_high"] < 0
    assert judged.loc["slow", "p_slower"] < ALPHA
    # A noisy case whose mean fell by more than the threshold is not flagged: the t-test says noise.
    assert judged.loc["noisy", "change"] < -0.10 and judged.loc["noisy", "verdict"] == "same"
    assert judged.loc["same", "verdict"] == "same"


def test_a_drop_smaller_than_the_threshold_is_not_a_regression_however_sure():
    judged = judge(tables({"c": [2.0, 2.0001, 1.9999]}), tables({"c": [1.9, 1.9001, 1.8999]}), threshold=0.10)
    assert judged["p_slower"][0] < ALPHA and judged["verdict"][0] == "same"
    assert judge(tables({"c": [2.0, 2.0001, 1.9999]}), tables({"c": [1.9, 1.9001, 1.8999]}),
                 threshold=0.04)["verdict"][0] == "regression"


def test_faster_failed_fixed_and_one_sided_cases():
    base = tables({"up": [1.0, 1.01, 0.99], "breaks": [1.0, 1.0, 1.0], "mended": [1.0, 1.0, 1.0],
                   "gone": [1.0, 1.0, 1.0]}, {"mended": "failed"})
    head = tables({"up": [1.5, 1.52, 1.49], "breaks": [1.0, 1.0, 1.0], "mended": [1.0, 1.0, 1.0],
                   "new": [1.0, 1.0, 1.0]}, {"breaks": "failed"})
    judged = judge(base, head, threshold=0.10).set_index("case_id")["verdict"]
    assert judged.to_dict() == {"up": "faster", "breaks": "failed", "mended": "fixed", "gone": "base only",
                                "new": "head only"}


def test_identical_processes_on_both_sides_are_the_same():
    judged = judge(tables({"c": [1.5, 1.5]}), tables({"c": [1.5, 1.5]}), threshold=0.10)
    assert judged["verdict"][0] == "same" and judged["change"][0] == 0


def test_verdict_needs_both_the_threshold_and_the_test():
    assert verdict(-0.2, ALPHA / 2, 1.0, 0.1) == "regression"
    assert verdict(-0.2, ALPHA * 2, 1.0, 0.1) == "same"
    assert verdict(-0.05, 0.0, 1.0, 0.1) == "same"
    assert verdict(+0.2, 1.0, 0.0, 0.1) == "faster"


def test_rates_recount_flagged_comparisons_at_any_threshold():
    rows = pd.DataFrame([
        {"variant": "unchanged", "comparison": 0, "case_id": "a", "change": -0.07, "p_slower": 0.001, "p_faster": 1.0, "verdict": "same"},
        {"variant": "unchanged", "comparison": 1, "case_id": "a", "change": 0.01, "p_slower": 0.5, "p_faster": 0.5, "verdict": "same"},
        {"variant": "slowed", "comparison": 0, "case_id": "a", "change": -0.18, "p_slower": 0.001, "p_faster": 1.0, "verdict": "regression"},
        {"variant": "slowed", "comparison": 1, "case_id": "a", "change": -0.12, "p_slower": 0.002, "p_faster": 1.0, "verdict": "regression"},
        {"variant": "slowed", "comparison": 1, "case_id": "b", "change": math.nan, "p_slower": math.nan, "p_faster": math.nan, "verdict": "failed"},
    ])
    assert rates(rows, 0.10) == {"threshold": 0.10, "unchanged_flagged": 0, "slowed_flagged": 2, "comparisons": 2}
    assert rates(rows, 0.05) == {"threshold": 0.05, "unchanged_flagged": 1, "slowed_flagged": 2, "comparisons": 2}
    # At 15% the 12% drop is not flagged, but the failed case still flags its comparison.
    assert rates(rows, 0.15)["slowed_flagged"] == 2
    assert rates(rows, 0.20)["slowed_flagged"] == 1


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


def test_a_revision_is_exported_as_it_was_committed(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "a.txt").write_text("first")
    git(repo, "add", "a.txt")
    git(repo, "commit", "-q", "-m", "one")
    first = git(repo, "rev-parse", "HEAD")
    (repo / "a.txt").write_text("second")
    git(repo, "commit", "-q", "-am", "two")
    (repo / "a.txt").write_text("uncommitted")
    with exported_revision("HEAD~1", repo) as (folder, commit):
        assert commit == first and (folder / "a.txt").read_text() == "first"
    assert not folder.exists()
    with exported_revision("HEAD", repo) as (folder, _):
        assert (folder / "a.txt").read_text() == "second"
    with pytest.raises(UserError, match="no such commit"):
        resolve_commit("no-such-branch", repo)
    with pytest.raises(UserError, match="not a git revision"):
        resolve_commit("--all", repo)
    with pytest.raises(UserError, match="not a git repository"):
        resolve_commit("HEAD", tmp_path)


@pytest.mark.slow
def test_continuous_against_head_runs_both_sides_and_writes_its_verdicts(tmp_path):
    (tmp_path / "s.yaml").write_text(TINY_SUITE)
    done = bench("continuous", "s.yaml", "--base", "HEAD", "--rounds", "2", "--out", "out",
                 "--head-env", "CONDBENCH_NATIVE=0", cwd=tmp_path)
    # Whether the fallback is slower by more than the threshold here is the machine's business (no timing
    # in tests); the exit code follows the verdict either way.
    judged = pd.read_csv(tmp_path / "out" / "continuous.csv")
    assert done.returncode == (1 if (judged["verdict"] == "regression").any() else 0), done.stderr
    assert list(judged["case_id"]) == ["k/cpu/float32/auto/auto/B32/256x256/k64/d0.25/out/iid"]
    assert judged["base_processes"][0] == judged["head_processes"][0] == 2
    assert "regression(s) in 1 compared case(s)" in done.stdout
    runs = {side: sorted((tmp_path / "out" / side / "runs").iterdir()) for side in ("base", "head")}
    assert [len(r) for r in runs.values()] == [2, 2]
    head_env = json.loads((runs["head"][0] / "env.json").read_text())
    base_env = json.loads((runs["base"][0] / "env.json").read_text())
    assert head_env["cpu_grouped_kernel"].startswith("off") and base_env["cpu_grouped_kernel"].startswith("native")
    progress = [line.split(":")[1].split()[0] for line in done.stderr.splitlines() if line.startswith("process ")]
    assert progress == ["base", "head", "head", "base"]


def test_power_study_writes_rows_per_comparison_and_continues_where_it_stopped(tmp_path, monkeypatch, capsys):
    """The study's bookkeeping, its three sides' processes stood in for: each side's processes are
    `measure_sides`, the same code `continuous` runs in real processes (the test above)."""
    import bench.regression.power as power
    from bench.cli.main import main

    case = "k/cpu/float32/auto/auto/B32/256x256/k64/d0.25/out/iid"
    measured = []

    def sides_measured(sides, suite_file, work, rounds):
        measured.append(({side.name: dict(side.env) for side in sides}, rounds))
        speedups = {"base": [1.50, 1.51], "unchanged": [1.51, 1.50], "slowed": [1.00, 1.01]}
        return {side.name: tables({case: speedups[side.name]}) for side in sides}

    monkeypatch.setattr(power, "measure_sides", sides_measured)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(TINY_SUITE)
    args = ["power", "s.yaml", "--slowdown-env", "CONDBENCH_NATIVE=0", "--rounds", "2", "--out", "study"]
    assert main([*args, "--comparisons", "1"]) == 0
    assert measured == [({"base": {}, "unchanged": {}, "slowed": {"CONDBENCH_NATIVE": "0"}}, 2)]
    rows = [json.loads(line) for line in (tmp_path / "study" / "comparisons.jsonl").read_text().splitlines()]
    assert sorted(r["variant"] for r in rows) == ["slowed", "unchanged"]
    assert {r["comparison"] for r in rows} == {0} and {r["case_id"] for r in rows} == {case}
    summary = json.loads((tmp_path / "study" / "summary.json").read_text())
    assert [r["threshold"] for r in summary["rates"]] == [0.05, 0.10, 0.15, 0.20]
    assert all(r["comparisons"] == 1 and r["unchanged_flagged"] == 0 for r in summary["rates"])
    # A finished comparison is never run again (each costs six processes): with comparison 1 on file as
    # an earlier invocation would have left it, asking for two runs none and summarizes both.
    with open(tmp_path / "study" / "comparisons.jsonl", "a") as f:
        f.writelines(json.dumps({**r, "comparison": 1}) + "\n" for r in rows)
    capsys.readouterr()
    assert main([*args, "--comparisons", "2"]) == 0
    assert len(measured) == 1 and "comparison " not in capsys.readouterr().err
    summary = json.loads((tmp_path / "study" / "summary.json").read_text())
    assert all(r["comparisons"] == 2 for r in summary["rates"])
    # Other settings in the same folder are refused.
    with pytest.raises(SystemExit) as refused:
        main(["power", "s.yaml", "--slowdown-env", "CONDBENCH_NATIVE=0", "--rounds", "3", "--out", "study"])
    assert refused.value.code == 2 and "other settings" in capsys.readouterr().err
