"""Gradients of block_sparse_linear: gradcheck in float64 and agreement across backends."""

from __future__ import annotations

import pytest
import torch

from condcore.ops import block_sparse_linear
from condcore.ops.problems import make_problem
from condcore.ops.reference import reference_linear


@pytest.mark.parametrize("regime", ["grouped", "union"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_float64(regime, bias, rng):
    p = make_problem(5, 12, 8, 4, bias=bias, dtype=torch.float64, generator=rng)
    inputs = [p.x.requires_grad_(), p.weight.requires_grad_()] + ([p.bias.requires_grad_()] if bias else [])

    def fn(x, w, b=None):
        return block_sparse_linear(x, w, b, **p.kwargs(), backend="torch", regime=regime)

    assert torch.autograd.gradcheck(fn, inputs)


@pytest.mark.parametrize("backend", ["torch", pytest.param("triton", marks=pytest.mark.triton)])
def test_gradients_match_autograd_through_reference(backend, rng):
    p = make_problem(20, 32, 48, 16, generator=rng)
    leaves = [t.clone().requires_grad_() for t in (p.x, p.weight, p.bias)]
    ref_leaves = [t.clone().requires_grad_() for t in (p.x, p.weight, p.bias)]
    grad_out = torch.randn(20, 48, generator=rng)
    block_sparse_linear(*leaves, **p.kwargs(), backend=backend).backward(grad_out)
    reference_linear(*ref_leaves, p.in_mask, p.out_mask, p.block_size).backward(grad_out)
    for got, want in zip(leaves, ref_leaves):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-4, atol=1e-4)
    # Dropped input blocks get exactly zero gradient.
    dropped = ~p.in_mask.repeat_interleave(16, dim=1)
    assert (leaves[0].grad[dropped] == 0).all()
