"""`bench gpu-check`: the GPU run as one command of steps, each stopped at its own limit, proven here by its
dry run (the same steps on this CPU under the Triton interpreter, suites/gpu.yaml shrunk to tiny shapes).
The dry run is also what proves every kind of case in suites/gpu.yaml through the real runner code."""

from __future__ import annotations

import json
import sys
import time

import psutil
import pytest
import yaml
from support.bench_cli import bench
from support.paths import REPO

from bench.core.providers import DENSE_CANDIDATES
from bench.gpu import check
from bench.plan.cases import kernel_cases, model_cases, select_cases
from bench.plan.suite import load_suite
from bench.store.results import load_run

GPU_YAML = REPO / "suites" / "gpu.yaml"


def kinds(cases) -> set[tuple]:
    return {(c.sweep, c.dtype, c.backend, c.regime, c.masks, c.mask_source) for c in cases}


@pytest.fixture(scope="module")
def dry_suite(tmp_path_factory):
    path = tmp_path_factory.mktemp("dry") / "gpu-dry.yaml"
    path.write_text(yaml.safe_dump(check.dry_run_suite(yaml.safe_load(GPU_YAML.read_text())), sort_keys=False))
    return load_suite(path)


def test_the_dry_suite_keeps_every_kind_of_case_on_tiny_cpu_shapes(dry_suite):
    gpu, dry = kernel_cases(load_suite(GPU_YAML)), kernel_cases(dry_suite)
    assert kinds(dry) == kinds(gpu)
    assert {c.device for c in dry} == {"cpu"} and dry_suite.threads == 1
    assert all(c.in_features * c.out_features <= 32 * 48 and c.batch <= 17 for c in dry)
    assert {c.batch for c in dry if c.regime == "grouped"} == {17}  # the interpreter's 16-row tile, cut
    assert [s.peers for s in dry_suite.kernels] == [s.peers for s in load_suite(GPU_YAML).kernels]


def test_the_models_section_trains_on_cuda_and_times_bf16_and_its_dry_run_on_the_cpu(dry_suite):
    (section,) = load_suite(GPU_YAML).models
    assert (section.device, section.inference_dtype) == ("cuda", "bfloat16") and section.batches[0] == 1
    assert section.dense_widths and "reinforce" in section.policies and "onnxruntime" not in section.providers
    assert all(case.device == "cuda" and case.name.endswith("-cuda-s0") for case in model_cases(load_suite(GPU_YAML)))
    (dry,) = dry_suite.models
    assert (dry.device, dry.inference_dtype, dry.epochs, dry.batches) == ("cpu", "bfloat16", 1, [1, 17])
    assert dry.providers == section.providers and dry.policies == section.policies and dry.dataset == section.dataset


def test_the_suite_step_runs_the_kernels_and_the_models_step_the_models(dry_suite):
    spec = yaml.safe_load(GPU_YAML.read_text())
    kernel_globs, model_globs = check.step_cases(spec)
    suite = load_suite(GPU_YAML)
    kernels, models = kernel_cases(suite), model_cases(suite)
    assert select_cases(kernels, models, kernel_globs, "s") == (kernels, [])
    assert select_cases(kernels, models, model_globs, "s") == ([], models)


def test_the_profiled_cases_are_in_both_suites(dry_suite):
    assert set(check.PROFILED) <= {c.case_id for c in kernel_cases(load_suite(GPU_YAML))}
    dry_ids = {c.case_id for c in kernel_cases(dry_suite)}
    assert all(case.replace("/cuda/", "/cpu/") in dry_ids for case in check._shrunk_ids(check.PROFILED))


def test_the_steps_fit_nine_minutes(tmp_path):
    for dry_run in (False, True):
        steps = check.plan_steps(tmp_path, dry_run)
        assert [s.name for s in steps] == ["device", "tests", "suite", "models", "profile", "compile"]
        assert sum(s.limit_s for s in steps) <= check.STEPS_LIMIT_S <= 9 * 60


@pytest.mark.parametrize("ignores_sigint", [False, True], ids=["interrupted", "killed"])
def test_a_step_past_its_limit_is_stopped_with_everything_it_started(tmp_path, monkeypatch, ignores_sigint):
    """SIGINT first (a run then writes what it finished), SIGKILL after the grace, to its whole process group."""
    monkeypatch.setattr(check, "GRACE_S", 1.0)
    script = ("import signal, subprocess, sys, time\n"
              + ("signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if ignores_sigint else "")
              + "child = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
              + ("signal.signal(signal.SIGINT, signal.SIG_IGN); " if ignores_sigint else "") + "time.sleep(120)'])\n"
              "print('started', child.pid, flush=True)\ntime.sleep(120)\n")
    step = check.Step("slow", (sys.executable, "-c", script), limit_s=2.0)
    started = time.monotonic()
    result = check.run_step(step, tmp_path, check.step_env(dry_run=True))
    assert result.status == "timed_out" and time.monotonic() - started < 2.0 + check.GRACE_S + 5
    grandchild = int((tmp_path / "slow.log").read_text().split()[1])
    deadline = time.monotonic() + 5
    while psutil.pid_exists(grandchild) and psutil.Process(grandchild).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the step's child outlived it"
        time.sleep(0.05)


def test_a_failing_step_is_a_status_not_an_error(tmp_path):
    step = check.Step("fails", (sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"), limit_s=30.0)
    result = check.run_step(step, tmp_path, check.step_env(dry_run=True))
    assert (result.status, result.returncode) == ("failed", 3) and "boom" in (tmp_path / "fails.log").read_text()


@pytest.mark.slow
@pytest.mark.triton
def test_the_dry_run_writes_what_a_gpu_run_would(tmp_path):
    proc = bench("gpu-check", "--dry-run", "--out", tmp_path / "g")
    out = tmp_path / "g"
    summary = json.loads((out / "summary.json").read_text())
    assert proc.returncode == 0, [(s["name"], s["status"], (out / s["log"]).read_text()[-1500:])
                                  for s in summary["steps"] if s["status"] != "ok"]
    assert summary["dry_run"] is True and summary["device"]["cuda_available"] in (False, True)
    assert [s["name"] for s in summary["steps"]] == ["device", "tests", "suite", "models", "profile", "compile"]
    for step in summary["steps"]:
        assert step["status"] == "ok" and step["seconds"] <= step["limit_s"] and (out / step["log"]).is_file()
        assert all((out / w).exists() for w in step["writes"]) and step["writes"]
    assert "passed" in (out / "tests.log").read_text()
    # the compile metadata: gpu.yaml's decode launches (batch 1 and 16, bf16, both mask sides) built for sm_90
    compiled = json.loads((out / "compile.json").read_text())
    assert compiled["arch"] == 90 and compiled["rows"] and all(r["ok"] for r in compiled["rows"])
    assert {(r["case"]["batch"], r["case"]["dtype"], r["case"]["masks"]) for r in compiled["rows"]} == {
        (1, "bfloat16", "both"), (16, "bfloat16", "both")}
    assert "sm_90" in (out / "compile.log").read_text()

    # the suite: every kind of gpu.yaml's cases ran and was checked, its peers beside ours
    (run_folder,) = summary["runs"]["results"]
    run = load_run(out / run_folder)
    gpu_suite = load_suite(GPU_YAML)
    assert kinds(run.kernel_rows) == kinds(kernel_cases(gpu_suite))
    peers = {sweep.name: set(sweep.peers) for sweep in gpu_suite.kernels}
    for row in run.kernel_rows:
        assert row.status == "ok", (row.case_id, row.error)
        assert row.max_relative_error <= 5e-2 and row.metric("ours", "speedup").median > 0
        checks = {c.provider: c for c in row.checks}
        assert set(checks) == {"ours", *DENSE_CANDIDATES, *peers[row.sweep]}
        assert "naive_gather" not in checks or checks["naive_gather"].status == "ok"
    assert (out / run_folder / "report" / "index.html").is_file()
    assert summary["goals"] == []  # the goals are the GPU's: no CPU row is one of them

    # the models: trained (on the CPU here), inference in bf16, each provider checked against the float64
    # network on the bf16 forward's masks, then timed
    (models_folder,) = summary["runs"]["models"]
    models = load_run(out / models_folder).model_rows
    assert {m.name for m in models} == {c.name for c in model_cases(load_suite(out / "gpu-dry.yaml"))}
    assert not load_run(out / models_folder).kernel_rows and models
    for row in models:
        assert row.error is None and (row.device, row.inference_dtype) == ("cpu", "bfloat16")
        assert row.inference_test_error is not None and row.checks[0].provider == "ours"
        assert row.checks[0].status == "ok" and row.checks[0].max_relative_error <= 5e-2
        assert {m.batch for m in row.metrics if m.metric == "time"} == {1, 17}
    assert "inference on cpu in bfloat16" in (out / "models.log").read_text()
    frame = load_run(out / models_folder).models  # what the analyses read: the bf16 inference's accuracy
    assert list(frame["test_error"]) == [m.inference_test_error for m in models]
    page = (out / models_folder / "report" / "index.html").read_text()
    assert "inference on cpu in bfloat16" in page and "float32 error %" in page

    (profile_folder,) = summary["runs"]["profiles"]
    profiled = [json.loads(line)["case_id"] for line in (out / profile_folder / "profiles.jsonl").read_text().splitlines()]
    assert sorted(set(profiled)) == sorted(c.replace("/cuda/", "/cpu/") for c in check._shrunk_ids(check.PROFILED))
    assert "summary:" in proc.stderr and "not ok" not in proc.stderr
