"""The one-layer benchmark script runs end to end (tiny shapes: a smoke test, not a measurement)."""

from __future__ import annotations

import json

from bench import bench_kernels


def test_small_run_writes_checked_rows(tmp_path, capsys):
    out = tmp_path / "k.json"
    assert bench_kernels.main(["--small", "--rounds", "2", "--json", str(out)]) == 0
    blob = json.loads(out.read_text())
    assert blob["env"]["copy_bandwidth_Bps"] > 0
    assert len(blob["results"]) == 6 and all(r["ok"] for r in blob["results"])
    for row in blob["results"]:
        assert {"dense_median_s", "naive_median_s", "ours_median_s"} <= set(row)
    assert "ours/ideal" in capsys.readouterr().out


def test_cuda_without_cuda_is_exit_2(capsys):
    import torch

    if torch.cuda.is_available():
        return
    assert bench_kernels.main(["--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
