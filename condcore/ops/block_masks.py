"""Applying a per-example block mask to a dense tensor: what the kernels and the autograd share."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from condcore import phases
from condcore.ops.call import LinearCall
from condcore.ops.reference import accumulation_dtype, reference_linear


def zero_inactive_blocks(t: torch.Tensor, mask: torch.Tensor | None, block_size: int) -> torch.Tensor:
    """t (B, n_blocks * block_size) with the blocks where mask (B, n_blocks) is False set to exactly 0.

    torch.where, not a product, so a NaN or inf inside a dropped block does not leak through 0 * NaN.
    """
    if mask is None:
        return t
    batch, features = t.shape
    blocks = t.reshape(batch, features // block_size, block_size)
    zero = torch.zeros((), dtype=t.dtype, device=t.device)
    return torch.where(mask.unsqueeze(-1), blocks, zero).reshape(batch, features)


def nonfinite_rows(t: torch.Tensor) -> torch.Tensor:
    """Indices of the rows of t holding inf or NaN; one sum over t first, so the common all-finite case
    costs one pass (an overflowing sum is a false alarm that costs only the per-row check)."""
    if bool(torch.isfinite(t.sum(dtype=accumulation_dtype(t.dtype)))):
        return torch.empty(0, dtype=torch.int64, device=t.device)
    return (~torch.isfinite(t)).any(dim=1).nonzero().flatten()


def recompute_leaked_rows(y: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                          in_mask: torch.Tensor | None, out_mask: torch.Tensor | None, block_size: int) -> torch.Tensor:
    """y with the rows a kernel got wrong by multiplying a dropped input block by zero recomputed by the spec.

    Kernels that run one GEMM over the whole of K for many rows zero the dropped blocks of x instead of
    skipping their weight tiles, so an inf or NaN weight in a tile that an example drops gives 0 * inf =
    NaN in that example's outputs, where the spec (reference_linear) skips the tile. Such a value can
    only show up as a non-finite output (nonfinite_rows finds them); those rows are then recomputed by
    the spec. Nothing is recomputed when every output is finite, which is when zeroing equals skipping.
    """
    if in_mask is None:
        return y
    with phases.phase("check_nonfinite"):
        bad = nonfinite_rows(y)
    if len(bad):
        y[bad] = reference_linear(x[bad], weight, bias, in_mask[bad], None if out_mask is None else out_mask[bad],
                                  block_size)
    return y


def recomputes_leaked_rows(kernel: Callable[[LinearCall], torch.Tensor]) -> Callable[[LinearCall], torch.Tensor]:
    """For a kernel path that multiplies dropped input blocks by zero: its result, then recompute_leaked_rows."""
    @functools.wraps(kernel)
    def honouring_the_spec(call: LinearCall) -> torch.Tensor:
        return recompute_leaked_rows(kernel(call), *call.args)

    return honouring_the_spec
