"""Autograd for block_sparse_linear: sparse forward; a sparse or a dense masked backward.

After a kernel the registry gives a sparse backward (the torch grouped kernel: large batches, any
device) and with an output mask, the backward walks the same per-block row groups
(cpu.grouped_linear_backward), so its work is out-density x dense like the forward's. After the other
kernels (union, triton) it runs the reference's dense masked math: three GEMMs over the full shapes,
exact, but as slow as dense.
"""

from __future__ import annotations

import torch

from condcore.ops.block_masks import nonfinite_rows, zero_inactive_blocks
from condcore.ops.reference import accumulation_dtype
from condcore.ops.registry import Kernel


class BlockSparseLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, in_mask, out_mask, block_size, kernel: Kernel):  # type: ignore[override]
        ctx.save_for_backward(x, weight, in_mask, out_mask)
        ctx.block_size = block_size
        ctx.has_bias = bias is not None
        # The sparse backward walks the output mask's row groups: without an output mask there are none.
        ctx.sparse_backward = kernel.load_sparse_backward() if out_mask is not None else None
        return kernel(x, weight, bias, in_mask, out_mask, block_size)

    @staticmethod
    def backward(ctx, grad_y):  # type: ignore[override]
        x, weight, in_mask, out_mask = ctx.saved_tensors
        k = ctx.block_size
        # The sparse backward writes into buffers (mm's out=), which autograd cannot differentiate; under
        # create_graph (double backward) the dense masked math below, plain torch ops, is used instead.
        if ctx.sparse_backward is not None and not torch.is_grad_enabled():
            needs = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], ctx.has_bias and ctx.needs_input_grad[2])
            grad_x, grad_w, grad_b = ctx.sparse_backward(grad_y, x, weight, in_mask, out_mask, k, needs)
            return grad_x, grad_w, grad_b, None, None, None, None
        acc = accumulation_dtype(x.dtype)
        g = zero_inactive_blocks(grad_y.to(acc), out_mask, k)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = zero_inactive_blocks(_skip_inactive_outputs(g @ weight.to(acc), g, weight, out_mask, k),
                                          in_mask, k).to(x.dtype)
        if ctx.needs_input_grad[1]:
            grad_w = (g.t() @ zero_inactive_blocks(x.to(acc), in_mask, k)).to(weight.dtype)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(dim=0).to(weight.dtype)
        return grad_x, grad_w, grad_b, None, None, None, None


def _skip_inactive_outputs(grad_x: torch.Tensor, g: torch.Tensor, weight: torch.Tensor, out_mask: torch.Tensor | None,
                           k: int) -> torch.Tensor:
    """grad_x = g @ weight, with the rows where it went non-finite recomputed from the row's active output
    blocks only: g is 0 in an inactive block, and 0 * an inf or NaN weight there would give NaN where
    the forward skipped that block (the spec, condcore.ops.reference)."""
    if out_mask is None:
        return grad_x
    for row in nonfinite_rows(grad_x).tolist():
        active = out_mask[row].repeat_interleave(k)
        grad_x[row] = g[row, active] @ weight[active].to(g.dtype)
    return grad_x
