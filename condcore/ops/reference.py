"""The spec of the block-sparse linear layer: dense masked math.

Every other backend is tested against this function. It computes in at least float32 (float64 stays
float64) and casts once at the end, which is the accumulation contract the fast kernels must match.
"""

from __future__ import annotations

import torch


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
    """((x * expand(in_mask)) @ weight.T + bias) * expand(out_mask), accumulated in fp32 or wider."""
    acc = accumulation_dtype(x.dtype)
    xa = x.to(acc)
    zero = torch.zeros((), dtype=acc, device=x.device)
    if in_mask is not None:
        # "Same result as zeroing the block": a NaN in a dropped block must not leak through 0 * NaN.
        xa = torch.where(expand_block_mask(in_mask, block_size), xa, zero)
    # .to(x.dtype) first: an fp32 weight with fp16/bf16 x is rounded to x's dtype (mixed precision).
    y = xa @ weight.to(x.dtype).to(acc).t()
    if bias is not None:
        y = y + bias.to(x.dtype).to(acc)
    if out_mask is not None:
        # torch.where, not a product: an inactive block is exactly 0 even where the dense value is inf/NaN.
        y = torch.where(expand_block_mask(out_mask, block_size), y, zero)
    if out is None:
        return y.to(x.dtype)
    return out.copy_(y)
