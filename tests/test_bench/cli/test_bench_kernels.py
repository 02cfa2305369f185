"""`python -m bench kernels` is a suite run by the suite runner (tiny shapes: a smoke test)."""

from __future__ import annotations

import yaml
from support.bench_cli import bench

from bench.cli import kernels as bench_kernels
from bench.plan.cases import kernel_cases
from bench.plan.suite import parse_suite
from bench.store.results import load_run


def test_small_run_is_a_checked_run_with_peers(tmp_path):
    # by its old path, the alias results and docs name (bench/bench_kernels.py)
    proc = bench("--small", "--rounds", "2", "--results", tmp_path / "res",
                 cwd=tmp_path, module="bench.bench_kernels")
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "res" / "runs").iterdir()
    run = load_run(folder)
    assert folder.name.startswith("kernels-cpu-small") and run.env["copy_bandwidth_Bps"]["cpu"] > 0
    assert len(run.kernels) == 7 and (run.kernels["status"] == "ok").all()
    assert set(run.kernels["in_features"]) == {256} and run.kernels["batch"].max() == 64
    # every case checked and timed each of its peers (the best dense paths, the gather loop; torch's
    # sparse route at decode)
    timed = run.providers[run.providers["status"] == "ok"].groupby("case_id")["provider"].apply(set)
    assert all({"dense", "ours", "dense_onednn", "dense_wxt", "naive_gather"} <= names for names in timed)
    assert "ours against its peers" in proc.stdout


def test_options_apply_to_the_suite():
    text = bench_kernels.suite_text("cpu", dtype="bfloat16", threads=1, rounds=3, seed=7, small=False)
    suite = parse_suite(text)
    assert (suite.threads, suite.repeats, suite.seed) == (1, 3, 7)
    cases = kernel_cases(suite)
    assert {c.dtype for c in cases} == {"bfloat16"} and {c.in_features for c in cases} == {2048}
    # the CPU goals' cases are in it: B = 1024, 2048², k = 128, output masks, d = 0.5 / 0.25 / 0.1
    goals = {c.density for c in cases if (c.batch, c.block_size, c.masks, c.mask_source) == (1024, 128, "out", "iid")}
    assert goals == {0.5, 0.25, 0.1}
    cuda = yaml.safe_load(bench_kernels.suite_text("cuda", dtype=None, threads=None, rounds=None, seed=None, small=True))
    assert cuda["name"] == "kernels-cuda-small" and all(max(s["batch"]) <= 64 for s in cuda["kernels"])


def test_cuda_without_cuda_is_one_line_exit_2(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    proc = bench("kernels", "--device", "cuda", "--results", tmp_path / "res", cwd=tmp_path)
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "res" / "runs").exists() or not any((tmp_path / "res" / "runs").iterdir())
