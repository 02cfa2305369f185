"""suites/gpu.yaml, verified without a GPU: every distinct kind of case it holds runs through the real
runner code on the Triton interpreter, on shapes shrunk to seconds."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from support.paths import REPO

from bench.core.providers import DENSE_CANDIDATES
from bench.measure.kernel import run_kernel_case
from bench.plan.cases import kernel_cases
from bench.plan.suite import load_suite


def shrunk_cases():
    seen, out = set(), []
    for case in kernel_cases(load_suite(REPO / "suites" / "gpu.yaml")):
        kind = (case.dtype, case.backend, case.regime, case.block_size, case.masks, case.mask_source)
        if kind in seen:
            continue
        seen.add(kind)
        batch = 5 if case.regime == "union" else 17  # two of the interpreter's 16-row tiles, the second cut
        out.append(dataclasses.replace(case, device="cuda" if torch.cuda.is_available() else "cpu", batch=batch,
                                       in_features=2 * case.block_size, out_features=3 * case.block_size))
    return out


@pytest.mark.triton
@pytest.mark.slow
@pytest.mark.parametrize("case", shrunk_cases(), ids=lambda c: c.case_id)
def test_gpu_suite_case_kinds_run_and_check(case, tmp_path):
    if case.device == "cpu":
        assert os.environ.get("TRITON_INTERPRET") == "1"
    peers = {sweep.name: tuple(sweep.peers) for sweep in load_suite(REPO / "suites" / "gpu.yaml").kernels}
    row = run_kernel_case(case, checkpoints=tmp_path, seed=0, rounds=1, bandwidth=1e10, peers=peers[case.sweep])
    assert row.status == "ok", row.error
    assert row.max_relative_error <= 5e-2 and row.metric("ours", "speedup").median > 0
    # the suite's peers ran beside ours, each checked first; the gather loop runs on every device and dtype
    checks = {c.provider: c for c in row.checks}
    assert set(checks) == {"ours", *DENSE_CANDIDATES, *peers[case.sweep]}
    assert all(row.metric(name, "time").median > 0 for name, c in checks.items() if c.status == "ok")
    if "naive_gather" in checks:
        assert checks["naive_gather"].status == "ok", checks["naive_gather"].error
