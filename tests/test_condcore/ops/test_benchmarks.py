"""Kernel micro-benchmarks with pytest-benchmark. In the test run (--benchmark-disable) each runs once
as a check; `pytest tests/test_condcore/ops/test_benchmarks.py --benchmark-enable --benchmark-autosave` times them and
`--benchmark-compare` compares against a saved run. Shapes are CPU-sized; speed goals live in the suites."""

from __future__ import annotations

import pytest
import torch

from condcore.ops import block_sparse_linear
from condcore.problems import RELATIVE_TOLERANCE, make_problem, relative_error

CASES = [
    pytest.param(512, 1024, 1024, 64, 0.25, None, id="grouped-B512-d0.25-out"),
    pytest.param(512, 1024, 1024, 64, 0.1, None, id="grouped-B512-d0.1-out"),
    pytest.param(1, 2048, 2048, 128, 0.25, 0.25, id="union-B1-d0.25-both"),
    pytest.param(16, 2048, 2048, 128, 0.25, 0.25, id="union-B16-d0.25-both"),
]


@pytest.mark.parametrize("batch,k_in,n_out,block,out_density,in_density", CASES)
def test_block_sparse_linear_speed(benchmark, batch, k_in, n_out, block, out_density, in_density):
    torch.set_num_threads(2)
    p = make_problem(batch, k_in, n_out, block, in_density=in_density, out_density=out_density,
                     generator=torch.Generator().manual_seed(0))
    out = torch.empty(batch, n_out)
    y = benchmark(lambda: block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", out=out))
    assert relative_error(p, y) <= RELATIVE_TOLERANCE[torch.float32]


@pytest.mark.parametrize("batch,k_in,n_out", [(512, 1024, 1024), (1, 2048, 2048)])
def test_dense_baseline_speed(benchmark, batch, k_in, n_out):
    torch.set_num_threads(2)
    x, w, b = torch.randn(batch, k_in), torch.randn(n_out, k_in), torch.randn(n_out)
    out = torch.empty(batch, n_out)
    y = benchmark(lambda: torch.addmm(b, x, w.t(), out=out))
    torch.testing.assert_close(y, torch.addmm(b, x, w.t()))

