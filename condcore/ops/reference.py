"""The spec of the block-sparse linear layer: dense masked math.

Every other backend is tested against this function. It computes in at least float32 (float64 stays
float64) and casts once at the end, which is the accumulation contract the fast kernels must match.

Masked blocks are skipped, not multiplied by zero: a dropped input block of an example adds nothing to
its outputs, even where x or the weight holds inf or NaN there, and an inactive output block is exactly
0. That is what a kernel that never reads those tiles computes, and it makes each example's result
depend on its own masks only (with "multiply by zero", 0 * NaN would let a NaN weight that no example
uses poison every row, and whether a kernel saw it would depend on the other rows of the batch).
"""

from __future__ import annotations

import torch

from condcore.ops.call import LinearCall
from condcore.ops.kernel_log import ran


def expand_block_mask(mask: torch.Tensor, block_size: int) -> torch.Tensor:
    """(B, n_blocks) bool -> (B, n_blocks * block_size) bool, each block's flag repeated per unit."""
    return mask.repeat_interleave(block_size, dim=1)


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def reference_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    in_mask: torch.Tensor | None,
    out_mask: torch.Tensor | None,
    block_size: int,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """y[b] = sum over b's active input blocks i of x[b, i] @ weight[:, i].T, + bias, then 0 in b's inactive
    output blocks; accumulated in fp32 or wider."""
    ran("reference")
    acc = accumulation_dtype(x.dtype)
    xa = x.to(acc)
    # .to(x.dtype) first: an fp32 weight with fp16/bf16 x is rounded to x's dtype (mixed precision).
    w = weight.to(x.dtype).to(acc)
    zero = torch.zeros((), dtype=acc, device=x.device)
    if in_mask is not None:
        # torch.where, not a product: a NaN of x in a dropped block must not leak through 0 * NaN.
        xa = torch.where(expand_block_mask(in_mask, block_size), xa, zero)
    if in_mask is None or bool(torch.isfinite(w).all()):
        y = xa @ w.t()  # with finite weights the dropped blocks add exact zeros: one GEMM is the same sum
    else:
        y = torch.zeros(x.shape[0], weight.shape[0], dtype=acc, device=x.device)
        for i in range(in_mask.shape[1]):
            cols = slice(i * block_size, (i + 1) * block_size)
            y += torch.where(in_mask[:, i : i + 1], xa[:, cols] @ w[:, cols].t(), zero)
    if bias is not None:
        y = y + bias.to(x.dtype).to(acc)
    if out_mask is not None:
        # torch.where, not a product: an inactive block is exactly 0 even where the dense value is inf/NaN.
        y = torch.where(expand_block_mask(out_mask, block_size), y, zero)
    if out is None:
        return y.to(x.dtype)
    return out.copy_(y)


def reference_call(call: LinearCall) -> torch.Tensor:
    """The reference backend's one dispatch path."""
    return reference_linear(*call.args, call.out)
