"""Applying a per-example block mask to a dense tensor: what the torch kernels and the autograd share."""

from __future__ import annotations

import torch


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
