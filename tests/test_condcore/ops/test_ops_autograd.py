"""Gradients of block_sparse_linear: gradcheck in float64 and agreement across backends."""

from __future__ import annotations

import pytest
import torch

from condcore.ops import block_sparse_linear
from condcore.ops.reference import reference_linear
from condcore.problems import make_problem


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


MASK_CASES = {
    "random": lambda b, n, g: torch.rand(b, n, generator=g) < 0.4,
    "all-off": lambda b, n, g: torch.zeros(b, n, dtype=torch.bool),
    "all-on": lambda b, n, g: torch.ones(b, n, dtype=torch.bool),
    "one-block": lambda b, n, g: torch.zeros(b, n, dtype=torch.bool).index_fill_(1, torch.tensor([1]), True),
}


@pytest.mark.parametrize("out_kind", list(MASK_CASES))
@pytest.mark.parametrize("with_in_mask", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_sparse_backward_matches_reference(out_kind, with_in_mask, dtype, rng):
    """The grouped torch kernel's own backward, against autograd through the reference in float64."""
    batch, k_in, n_out, k = 37, 48, 64, 16
    x, w, b = (torch.randn(*s, generator=rng) for s in ((batch, k_in), (n_out, k_in), (n_out,)))
    out_mask = MASK_CASES[out_kind](batch, n_out // k, rng)
    in_mask = torch.rand(batch, k_in // k, generator=rng) < 0.6 if with_in_mask else None
    grad_out = torch.randn(n_out, batch, generator=rng).t()  # non-contiguous, as autograd may hand it
    leaves = [t.to(dtype).clone().requires_grad_() for t in (x, w, b)]
    ref_leaves = [t.double().clone().requires_grad_() for t in (x, w, b)]
    block_sparse_linear(*leaves, in_mask=in_mask, out_mask=out_mask, block_size=k, backend="torch",
                        regime="grouped").backward(grad_out.to(dtype))
    reference_linear(*ref_leaves, in_mask, out_mask, k).backward(grad_out.double())
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    for got, want in zip(leaves, ref_leaves):
        assert got.grad.dtype == dtype
        scale = max(want.grad.abs().max().item(), 1.0)
        torch.testing.assert_close(got.grad.double() / scale, want.grad / scale, rtol=tol, atol=tol)
    if out_kind == "all-off":  # exactly zero, not merely small
        assert all((leaf.grad == 0).all() for leaf in leaves)


def test_sparse_backward_only_computes_what_is_asked(rng):
    p = make_problem(40, 32, 48, 16, generator=rng)
    x = p.x.clone().requires_grad_()
    y = block_sparse_linear(x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")
    y.sum().backward()
    assert x.grad is not None and p.weight.grad is None and p.bias.grad is None
    ref_x = p.x.clone().requires_grad_()
    reference_linear(ref_x, p.weight, p.bias, p.in_mask, p.out_mask, p.block_size).sum().backward()
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("regime", ["grouped", "union"])
def test_mixed_precision_gradients_are_fp32_and_match(regime, rng):
    """bf16 x with an fp32 weight (CondNet's training under autocast): the weight and bias get fp32
    gradients equal to autograd through the reference, which rounds the weight the same way."""
    p = make_problem(40, 48, 64, 16, generator=rng)
    x = p.x.bfloat16().requires_grad_()
    w, b = p.weight.clone().requires_grad_(), p.bias.clone().requires_grad_()
    ref_x, ref_w, ref_b = (t.detach().clone().requires_grad_() for t in (x, w, b))
    grad_out = torch.randn(40, 64, generator=rng).bfloat16()
    block_sparse_linear(x, w, b, **p.kwargs(), backend="torch", regime=regime).backward(grad_out)
    reference_linear(ref_x, ref_w, ref_b, p.in_mask, p.out_mask, p.block_size).backward(grad_out)
    assert (x.grad.dtype, w.grad.dtype, b.grad.dtype) == (torch.bfloat16, torch.float32, torch.float32)
    for got, want in ((x.grad, ref_x.grad), (w.grad, ref_w.grad), (b.grad, ref_b.grad)):
        scale = max(want.abs().max().item(), 1.0)
        torch.testing.assert_close(got.double() / scale, want.double() / scale, rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("backend,regime", [("torch", "union"), ("torch", "grouped"),
                                            pytest.param("triton", "grouped", marks=pytest.mark.triton)])
def test_a_nonfinite_weight_in_a_skipped_output_block_gets_no_gradient_into_rows_that_skip_it(backend, regime, rng):
    """The forward skips a row's inactive output blocks; the backward must too (0 * NaN is NaN)."""
    p = make_problem(6, 32, 48, 16, generator=rng)
    p.out_mask[:, 1] = False
    p.out_mask[0, 1] = True  # row 0 uses output block 1, the others skip it
    p.in_mask[:] = True
    poisoned = p.weight.clone()
    poisoned[16 + 3, 5] = float("nan")
    zeroed = p.weight.clone()
    zeroed[16:32] = 0  # what rows 1..5 see of block 1: nothing
    grad_out = torch.randn(6, 48, generator=rng)
    x = p.x.clone().requires_grad_()
    block_sparse_linear(x, poisoned, p.bias, **p.kwargs(), backend=backend, regime=regime).backward(grad_out)
    x_ref = p.x.clone().requires_grad_()
    reference_linear(x_ref, zeroed, p.bias, p.in_mask, p.out_mask, 16).backward(grad_out)
    torch.testing.assert_close(x.grad[1:], x_ref.grad[1:], rtol=1e-4, atol=1e-4)
    assert torch.isnan(x.grad[0, 5])  # the row that uses the NaN weight sees it


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_double_backward_through_the_sparse_backward_runs_the_dense_math(rng, dtype):
    """Found probing: create_graph through the grouped regime, with a weight that requires grad (a
    training step's), failed inside mm(out=); it now takes the dense masked backward, which autograd
    differentiates, and agrees with the reference's."""
    p = make_problem(64, 32, 48, 16, generator=rng, dtype=dtype)
    grads = []
    for backend in ("torch", "reference"):
        x = p.x.clone().requires_grad_()
        weight = p.weight.clone().requires_grad_()
        y = block_sparse_linear(x, weight, p.bias, **p.kwargs(), backend=backend, regime="grouped")
        (g,) = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        (gg,) = torch.autograd.grad(g.pow(2).sum(), x)
        grads.append((g.detach(), gg))
    # fp32: second-order sums in another order
    torch.testing.assert_close(grads[0], grads[1], **({} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-4}))
