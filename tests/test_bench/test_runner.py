"""The runner end to end on tiny suites: results case by case, resume, shards and merge, failed rows,
reports and the regression check."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from support.bench_cli import bench, only_run
from support.suites import TRAINED, tiny_suite

from bench.core.schema import SCHEMA_VERSION
from bench.report.data import PHASE_NAMES
from bench.store.results import load_run, read_rows


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiny")
    (tmp / "tiny.yaml").write_text(tiny_suite())
    proc = bench("run", "tiny.yaml", "--results", "res", cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return tmp, only_run(tmp / "res"), proc


def test_run_writes_every_case_with_metrics(tiny_run):
    tmp, run_dir, proc = tiny_run
    run = load_run(run_dir)
    assert len(run.kernels) == 8 and (run.kernels["status"] == "ok").all()
    for col in ("dense_median_s", "dense_iqr_s", "sparse_median_s", "speedup", "speedup_iqr", "fraction_of_ideal",
                "sparse_tflops", "sparse_gbps", "fraction_of_roofline", "max_relative_error", "work_density",
                "speedup_ci_low", "speedup_ci_high", "others_cores", "steal_cores"):
        assert run.kernels[col].notna().all(), col
    k = run.kernels
    assert ((k["speedup_ci_low"] <= k["speedup"]) & (k["speedup"] <= k["speedup_ci_high"])).all()
    assert (run.kernels["speedup"] > 0).all()
    assert set(run.kernels["regime_used"]) == {"union", "grouped"}
    assert run.env["cpu_logical_cores"] >= 1 and run.env["torch"] and "git_commit" in run.env
    # what the CPU can do, which its model name does not say
    assert run.env["cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "SVE256", "SVE"}
    assert isinstance(run.env["cpu_native_bf16"], bool) and f"({run.env['cpu_capability']}" in proc.stdout
    assert (run_dir / "kernels.csv").exists() and (run_dir / "suite.yaml").exists()
    assert "sweep k" in proc.stdout  # the rich table
    assert (run_dir / "report" / "index.html").exists()  # and the report files
    # where the run's wall time went: every phase inside the total, and said in the report
    (wall,) = run.env["wall_seconds"]
    assert {"environment", "kernels", "total"} <= set(wall) and "training" not in wall
    assert 0 < wall["environment"] + wall["kernels"] <= wall["total"]
    # the report's line names each phase of half a second or more (this tiny sweep's kernels may be shorter)
    said = proc.stdout.split("measured in ")[1].splitlines()[0]
    assert all(PHASE_NAMES[name] in said for name, seconds in wall.items() if name != "total" and seconds >= 0.5), said
    # this machine's roofline, measured once per run: said in the report, drawn with every provider on it
    roof = run.env["peaks"]["cpu"]
    assert set(roof["gemm_flops"]) == set(run.kernels["dtype"]) and roof["triad_Bps"] > 0
    assert "measured roofline: cpu: float32 GEMM" in proc.stdout
    assert (run_dir / "report" / "roofline.png").stat().st_size > 0
    # no provider beats the roof its own run measured
    assert (k["fraction_of_roofline"] <= 1.0).all()


def test_resume_finishes_an_interrupted_run(tiny_run, tmp_path):
    _, run_dir, _ = tiny_run
    copy = tmp_path / "run"
    copy.mkdir()
    for name in ("suite.yaml", "env.json"):
        (copy / name).write_text((run_dir / name).read_text())
    lines = (run_dir / "kernels.jsonl").read_text().splitlines()
    # Three finished cases, then a row cut short by the kill.
    (copy / "kernels.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    proc = bench("run", "--resume", copy, "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(copy / "kernels.jsonl", "case_id")
    assert sorted(r["case_id"] for r in rows) == sorted(json.loads(l)["case_id"] for l in lines)
    assert rows[:3] == [json.loads(l) for l in lines[:3]]  # kept, not rerun
    # the resume's wall time is added beside the first invocation's, and measures no environment again
    first, resumed = json.loads((copy / "env.json").read_text())["wall_seconds"]
    assert "environment" in first and "environment" not in resumed and resumed["kernels"] > 0


def test_shards_merge_into_the_whole(tiny_run, tmp_path):
    (tmp_path / "tiny.yaml").write_text(tiny_suite())
    for i in range(2):
        assert bench("run", "tiny.yaml", "--results", "res", "--shard", f"{i}/2", "--quiet", cwd=tmp_path).returncode == 0
    shards = sorted((tmp_path / "res" / "runs").iterdir())
    assert len(shards) == 2
    proc = bench("merge", *shards, "--out", tmp_path / "merged", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    merged = load_run(tmp_path / "merged")
    assert sorted(merged.kernels["case_id"]) == sorted(load_run(tiny_run[1]).kernels["case_id"])
    # The merged run is reported like any run: tables, the terminal report, the page.
    assert (tmp_path / "merged" / "kernels.csv").exists() and (tmp_path / "merged" / "report" / "index.html").exists()
    assert "at a glance" in proc.stdout
    again = bench("merge", *shards, "--out", tmp_path / "merged", cwd=tmp_path)
    assert again.returncode == 2 and "already exists and is not an empty folder" in again.stderr


def test_an_incomplete_set_of_shards_is_refused_unless_partial(tiny_run, tmp_path):
    """Shard 2 of 3 never ran and shard 1 was killed before its last case: the merge says so; with
    --partial it merges what is there and the merged run says what it lacks."""
    (tmp_path / "tiny.yaml").write_text(tiny_suite())
    for i in range(2):
        assert bench("run", "tiny.yaml", "--results", "res", "--shard", f"{i}/3", "--quiet", cwd=tmp_path).returncode == 0
    shards = sorted((tmp_path / "res" / "runs").iterdir())
    rows = (shards[1] / "kernels.jsonl").read_text().splitlines()
    (shards[1] / "kernels.jsonl").write_text("\n".join(rows[:-1]) + "\n")
    proc = bench("merge", *shards, "--out", tmp_path / "merged", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "shard 2/3 is missing" in proc.stderr and "lacks 1 kernel case(s) of its shard" in proc.stderr
    assert not (tmp_path / "merged").exists() and not list(tmp_path.glob(".merging-*"))
    proc = bench("merge", *shards, "--out", tmp_path / "merged", "--partial", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "partial: shard 2/3 is missing" in proc.stdout
    merged = load_run(tmp_path / "merged")
    assert len(merged.kernels) == len(rows) - 1 + len((shards[0] / "kernels.jsonl").read_text().splitlines())
    assert "shard 2/3 is missing" in merged.env["partial"][0]
    assert "Partial run." in (tmp_path / "merged" / "report" / "index.html").read_text()


def test_report_writes_plots_and_html(tiny_run):
    tmp, run_dir, _ = tiny_run
    proc = bench("report", run_dir, cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    report = run_dir / "report"
    for name in ("speedup_vs_density.png", "speedup_vs_batch.png", "index.html"):
        assert (report / name).stat().st_size > 1000
    page = (report / "index.html").read_text()
    assert "data:image/png;base64," in page and "Every kernel case" in page and "Where it stops paying" in page


def test_compare_flags_a_real_slowdown_only(tiny_run, tmp_path):
    tmp, run_dir, _ = tiny_run
    same = bench("compare", run_dir, run_dir, cwd=tmp)
    assert same.returncode == 0 and "0 regression(s) in 8" in same.stdout
    table = load_run(run_dir).kernels
    slower = table.copy()
    slower.loc[0, "speedup"] = table.loc[0, "speedup"] * 0.5
    slower.loc[0, "speedup_iqr"] = 0.0
    slower.to_csv(tmp_path / "slower.csv", index=False)
    table.assign(speedup_iqr=0.0).to_csv(tmp_path / "base.csv", index=False)
    proc = bench("compare", tmp_path / "base.csv", tmp_path / "slower.csv", cwd=tmp)
    assert proc.returncode == 1 and "1 regression(s)" in proc.stdout
    noisy = slower.copy()
    noisy.loc[0, "speedup_iqr"] = 10.0 * table.loc[0, "speedup"]  # a drop inside the noise is not flagged
    noisy.to_csv(tmp_path / "noisy.csv", index=False)
    assert bench("compare", tmp_path / "base.csv", tmp_path / "noisy.csv", cwd=tmp).returncode == 0


def test_compare_of_a_run_missing_cases_fails_unless_allowed(tiny_run, tmp_path):
    """A run killed after its first case compares clean on that case: that is not a pass."""
    tmp, run_dir, _ = tiny_run
    table = load_run(run_dir).kernels
    table.iloc[:1].to_csv(tmp_path / "one.csv", index=False)
    proc = bench("compare", run_dir, tmp_path / "one.csv", cwd=tmp)
    assert proc.returncode == 1, proc.stdout
    assert "7 baseline case(s) are not in the run" in proc.stdout and "--allow-missing" in proc.stdout
    assert bench("compare", run_dir, tmp_path / "one.csv", "--allow-missing", cwd=tmp).returncode == 0


def test_failed_cases_are_rows_and_the_sweep_goes_on(tmp_path):
    # Triton on the CPU interpreter refuses block size 8: that case fails, the others still run.
    (tmp_path / "s.yaml").write_text(tiny_suite(kernels={"backend": ["triton"], "block_size": [8, 16], "density": [0.5],
                                                        "masks": ["out"]}))
    proc = bench("run", "s.yaml", "--results", "res", "--quiet", cwd=tmp_path, env_extra={"TRITON_INTERPRET": "1"})
    assert proc.returncode == 0, proc.stderr
    run = load_run(only_run(tmp_path / "res"))
    failed = run.kernels[run.kernels["status"] != "ok"]
    assert len(failed) == 2 and set(failed["block_size"]) == {8}
    assert failed["error"].str.contains("multiple of 16").all()
    assert (run.kernels[run.kernels["block_size"] == 16]["status"] == "ok").all()


def test_models_and_trained_masks(tmp_path):
    (tmp_path / "m.yaml").write_text(tiny_suite(kernels=TRAINED, models={
        "providers": ["ours", "torch", "onnxruntime", "torch_compile"]}))
    proc = bench("run", "m.yaml", "--results", "res", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = load_run(only_run(tmp_path / "res"))
    assert sorted(run.models["policy"]) == ["dense", "reinforce"]
    for col in ("test_error", "valid_error", "realized_density", "others_cores"):
        assert run.models[col].notna().all()
    assert all(r.schema_version == SCHEMA_VERSION for r in run.model_rows + run.kernel_rows)
    # each model's training curve is kept with the run; its last validation is the row's valid_error
    histories = json.loads((run.folder / "histories.json").read_text())
    assert sorted(histories) == sorted(run.models["name"])
    for row in run.models.to_dict("records"):
        history = histories[row["name"]]
        assert [r["epoch"] for r in history] == [1, 2]
        assert math.isclose(row["valid_error"], 1 - history[-1]["valid_accuracy"])
    speeds = run.model_speeds  # long format: one row per model and batch size
    assert sorted(zip(speeds["name"], speeds["batch"])) == sorted((n, b) for n in run.models["name"] for b in (1, 8))
    assert speeds.notna().all().all()
    assert ((speeds["speedup_ci_low"] <= speeds["speedup"]) & (speeds["speedup"] <= speeds["speedup_ci_high"])).all()
    (trained,) = run.kernels.to_dict("records")
    assert trained["mask_source"] == "trained" and trained["status"] == "ok" and trained["model"].startswith("digits-reinforce")
    assert "trained models" in proc.stdout
    assert (tmp_path / "res" / "checkpoints" / trained["model"] / "masks.npz").exists()
    # checkpoints are reused (they do not depend on the providers timing them; ONNX and torch.compile again
    # would add half a minute and test nothing more)
    (tmp_path / "again.yaml").write_text(tiny_suite(kernels=TRAINED, models={}))
    again = bench("run", "again.yaml", "--results", "res", "--quiet", cwd=tmp_path)
    assert again.returncode == 0
    (second,) = [f for f in (tmp_path / "res" / "runs").iterdir() if f != run.folder]
    assert json.loads((second / "histories.json").read_text()) == histories  # read back from the checkpoints


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "missing.yaml"], "no such suite file"),
        (["run", "bad.yaml"], "bad YAML"),
        (["run", "cuda.yaml"], "CUDA is not available"),
        (["run"], "name a suite file"),
        (["run", "tiny.yaml", "--shard", "3/2"], "need 0 <= i < n"),
        (["report", "nowhere"], "no such run folder"),
        (["compare", "a", "b"], "no such run folder or file"),
    ],
)
def test_runner_mistakes_exit_2(tmp_path, args, message):
    import torch

    if "cuda.yaml" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    (tmp_path / "tiny.yaml").write_text(tiny_suite())
    (tmp_path / "bad.yaml").write_text("name: [x")
    (tmp_path / "cuda.yaml").write_text(tiny_suite(kernels={"device": ["cuda"], "cache": "cold"}))
    proc = bench(*args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_models_trained_side_by_side_match_their_checkpoints(tmp_path):
    """train_jobs: 2 trains on two spawned one-thread workers (three models: one first in-process, then
    two in the pool); every model is finished, recorded and reused on the next run."""
    suite = tiny_suite(kernels=TRAINED, models={"taus": [0.5, 0.25], "train_jobs": 2})
    (tmp_path / "m.yaml").write_text(suite)
    proc = bench("run", "m.yaml", "--results", "res", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = load_run(only_run(tmp_path / "res"))
    assert len(run.models) == 3
    folders = sorted((tmp_path / "res" / "checkpoints").iterdir())
    assert len(folders) == 3
    for folder in folders:
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["precision"] in ("fp32", "bf16") and (folder / "masks.npz").exists()
        assert not list(folder.glob("*.tmp"))
    stamps = {f: (f / "metrics.json").stat().st_mtime_ns for f in folders}
    again = bench("run", "m.yaml", "--results", "res", "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert stamps == {f: (f / "metrics.json").stat().st_mtime_ns for f in folders}  # reused, not retrained


def test_a_case_too_big_for_memory_is_a_failed_row_not_a_dead_run(tmp_path):
    """Batch 100000 on a 16384^2 fp32 layer grew the process to 23 GiB until the kernel killed it."""
    import psutil

    from bench.measure.kernel import case_memory_bytes, run_kernel_case
    from bench.plan.cases import KernelCase

    huge = KernelCase("s", "cpu", "float32", "auto", "auto", 100_000, 16384, 16384, 128, 0.25, "out", "iid")
    assert case_memory_bytes(huge) > psutil.virtual_memory().total
    before = psutil.Process().memory_info().rss
    row = run_kernel_case(huge, checkpoints=tmp_path, seed=0, rounds=3, bandwidth=1e10)
    assert row.status == "failed" and "GiB" in row.error and "not run" in row.error and not row.metrics
    assert psutil.Process().memory_info().rss - before < 2**30
    small = KernelCase("s", "cpu", "float32", "auto", "auto", 8, 64, 64, 16, 0.5, "out", "iid")
    assert run_kernel_case(small, checkpoints=tmp_path, seed=0, rounds=3, bandwidth=1e10).status == "ok"


def test_time_every_seed_times_every_seed(tmp_path):
    text = tiny_suite(kernels=None, models={"batches": [8], "seeds": [3, 4], "time_every_seed": True,
                                           "policies": ["reinforce"]})
    (tmp_path / "m.yaml").write_text(text)
    proc = bench("run", "m.yaml", "--results", "res", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    speeds = load_run(only_run(tmp_path / "res")).model_speeds
    assert sorted(speeds["seed"]) == [3, 4] and set(speeds["batch"]) == {8} and speeds["speedup"].notna().all()


def test_the_error_change_against_dense_is_paired_per_seed():
    from bench.analysis.models_summary import model_summary

    def row(policy, tau, seed, error):
        return {"policy": policy, "tau": tau, "seed": seed, "test_error": error, "inference_mode": "threshold",
                "realized_density": [0.5]}

    models = pd.DataFrame([row("dense", 1.0, 0, 0.02), row("dense", 1.0, 1, 0.05), row("dense", 1.0, 2, 0.03),
                           row("reinforce", 0.5, 0, 0.03), row("reinforce", 0.5, 1, 0.06), row("reinforce", 0.5, 2, 0.04),
                           row("topk", 0.5, 1, 0.08)])
    dense, reinforce, topk = model_summary(models).to_dict("records")
    assert math.isnan(dense["error_change"])
    # the splits' spread (2 to 5%) cancels: the same +1 point on every seed has an interval of width 0
    assert reinforce["error_change"] == pytest.approx(0.01)
    assert reinforce["error_change_low"] == pytest.approx(0.01) and reinforce["error_change_high"] == pytest.approx(0.01)
    assert reinforce["test_error_high"] - reinforce["test_error_low"] > 0.05
    # one seed shared with dense (seed 1): a change, no interval
    assert topk["error_change"] == pytest.approx(0.03) and topk["error_change_seeds"] == 1
    assert math.isnan(topk["error_change_low"])


def test_an_error_interval_never_leaves_zero_to_one():
    """Seen in a real run: REINFORCE at 1.12 / 2.97 / 2.60% gave a t-interval of [-0.21, 4.67]%."""
    from bench.analysis.models_summary import model_summary

    models = pd.DataFrame([{"policy": "reinforce", "tau": 0.5, "seed": s, "test_error": e, "test_examples": 269,
                            "inference_mode": "threshold", "realized_density": [0.5]}
                           for s, e in enumerate([3 / 269, 8 / 269, 7 / 269])])
    (row,) = model_summary(models).to_dict("records")
    assert row["test_error_low"] == 0.0 and row["test_error"] < row["test_error_high"] < 0.05
    models["test_error"] = [1.0, 1.0, 260 / 269]
    (row,) = model_summary(models).to_dict("records")
    assert row["test_error_high"] == 1.0 and 0.9 < row["test_error_low"] < row["test_error"]


def test_seeds_that_agree_by_chance_keep_the_test_sets_uncertainty():
    """Three splits with 7 of 269 wrong each: the t-interval has width 0, the pooled binomial one does not."""
    from scipy import stats

    from bench.analysis.models_summary import model_summary

    models = pd.DataFrame([{"policy": "dense", "tau": 1.0, "seed": s, "test_error": 7 / 269, "test_examples": 269,
                            "inference_mode": "threshold", "realized_density": [1.0]} for s in range(3)])
    (dense,) = model_summary(models).to_dict("records")
    assert dense["test_error_low"] == pytest.approx(stats.beta.ppf(0.025, 21, 807 - 21 + 1))
    assert dense["test_error_high"] == pytest.approx(stats.beta.ppf(0.975, 22, 807 - 21))
    assert 0.015 < dense["test_error_low"] < 7 / 269 < dense["test_error_high"] < 0.04


def test_models_over_seeds_report_mean_and_interval(tmp_path):
    """Each seed trains on its own split; the report gives the test error's mean and 95% interval.
    A policy outside seeded_policies trains with the first seed only."""
    text = tiny_suite(kernels=TRAINED, models={"batches": [8], "seeds": [0, 1, 2], "seeded_policies": ["reinforce"]})
    (tmp_path / "m.yaml").write_text(text)
    proc = bench("run", "m.yaml", "--results", "res", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = load_run(only_run(tmp_path / "res"))
    assert sorted(run.models.loc[run.models["policy"] == "reinforce", "seed"]) == [0, 1, 2]
    assert list(run.models.loc[run.models["policy"] == "dense", "seed"]) == [0]
    # speed is timed on the first seed's models only
    assert set(run.model_speeds["seed"]) == {0} and set(run.model_speeds["name"]) == set(run.models["name"][run.models["seed"] == 0])
    from bench.analysis.models_summary import model_summary

    dense, summary = model_summary(run.models).to_dict("records")
    # one seed: the exact binomial interval of its test images
    assert dense["seeds"] == 1 and dense["test_error_low"] < dense["test_error"] < dense["test_error_high"]
    assert summary["seeds"] == 3
    assert summary["test_error_low"] <= summary["test_error"] <= summary["test_error_high"]
    reinforce_errors = run.models.loc[run.models["policy"] == "reinforce", "test_error"]
    assert abs(summary["test_error"] - reinforce_errors.mean()) < 1e-12
    assert "mean [95% interval] over the seeds" in " ".join(proc.stdout.split())  # rich wraps long titles
    # trained-mask kernel cases use the first seed's model only
    assert len(run.kernels) == 1 and run.kernels["model"].iloc[0].endswith("-s0")


def test_kernel_rows_read_in_numeric_order(tiny_run):
    """Sorted as case-id strings, B = 16 came before 4 and k = 128 before 64; the report sorts numbers."""
    import pandas as pd

    from bench.analysis.rows import in_reading_order, peer_summary

    rows = pd.DataFrame({"batch": [16, 4, 1024, 256, 4], "block_size": [128, 64, 128, 64, 128],
                         "mask_source": ["iid"] * 5, "requested_density": [0.5, 0.1, 0.25, 0.5, 0.25],
                         "ideal_density": [0.5, 0.1, 0.25, 0.5, 0.25]})
    ordered = in_reading_order(rows)
    assert list(zip(ordered["batch"], ordered["block_size"])) == [(4, 64), (4, 128), (16, 128), (256, 64), (1024, 128)]
    _, run_dir, _ = tiny_run
    kernels = in_reading_order(load_run(run_dir).kernels)
    assert list(kernels["batch"]) == sorted(kernels["batch"])  # the suite lists batch 32 before 2
    # no peers in its suite, but every case times the dense paths its baseline of record is the fastest of
    peers = peer_summary(load_run(run_dir))
    assert {"dense_onednn", "dense_gemv"} <= set(peers.columns) and list(peers["batch"]) == sorted(peers["batch"])


def test_a_full_disk_is_one_line_and_the_run_resumes(tmp_path, monkeypatch, capsys):
    """Found probing: a full disk printed 55 lines and four chained tracebacks (the rows stayed safe)."""
    import errno

    import bench.runner as runner
    from bench.cli.main import main

    (tmp_path / "tiny.yaml").write_text(tiny_suite())
    monkeypatch.chdir(tmp_path)
    real = runner.append_row
    written = []

    def fills_up(path, row):
        if len(written) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        written.append(row)
        real(path, row)

    monkeypatch.setattr(runner, "append_row", fills_up)
    with pytest.raises(SystemExit) as exit_:
        main(["run", "tiny.yaml", "--results", "res", "--quiet"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert exit_.value.code == 2 and "Traceback" not in err and len(errors) == 1, err
    assert "No space left on device writing" in errors[0] and "--resume" in errors[0]
    folder = only_run(tmp_path / "res")
    assert len(read_rows(folder / "kernels.jsonl", "case_id")) == 2
    monkeypatch.setattr(runner, "append_row", real)
    assert main(["run", "--resume", str(folder), "--quiet"]) == 0
    assert len(read_rows(folder / "kernels.jsonl", "case_id")) == 8


def test_a_bf16_section_compares_every_seed_on_its_bf16_accuracy(tmp_path):
    """A later seed's models are not timed, but read with the accuracy of the inference their section
    times: its bf16 test error, the float32 checkpoint's beside it."""
    (tmp_path / "b.yaml").write_text(tiny_suite(kernels=None, models={
        "inference_dtype": "bfloat16", "seeds": [0, 1], "providers": ["ours", "torch"]}))
    proc = bench("run", "b.yaml", "--results", "res", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = load_run(only_run(tmp_path / "res"))
    assert sorted(r.seed for r in run.model_rows) == [0, 0, 1, 1]
    for row in run.model_rows:
        assert (row.device, row.inference_dtype) == ("cpu", "bfloat16") and row.inference_test_error is not None
        assert abs(row.inference_test_error - row.test_error) < 0.1  # rounding moves a few test images at most
        assert bool(row.metrics) == (row.seed == 0)  # timed on the first seed's models only
    assert list(run.models["test_error"]) == [r.inference_test_error for r in run.model_rows]
    assert "inference on cpu in bfloat16" in proc.stdout and "float32" in proc.stdout
