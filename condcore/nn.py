"""nn.Module wrapper of block_sparse_linear (the op itself lives in condcore.ops)."""

from __future__ import annotations

import math

import torch
from torch import nn

from condcore.ops import block_sparse_linear


class BlockSparseLinear(nn.Linear):
    """A torch.nn.Linear whose input and output are block-sparse per example.

    forward(x, in_mask=None, out_mask=None): x (..., in_features); masks (..., n_blocks) bool. Leading
    dimensions are flattened into the batch. With no masks it is exactly nn.Linear.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        block_size: int,
        bias: bool = True,
        *,
        backend: str = "auto",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if block_size <= 0 or in_features % block_size or out_features % block_size:
            raise ValueError(
                f"block_size {block_size} must be positive and divide in_features {in_features} "
                f"and out_features {out_features}"
            )
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.block_size = block_size
        self.backend = backend

    @property
    def in_blocks(self) -> int:
        return self.in_features // self.block_size

    @property
    def out_blocks(self) -> int:
        return self.out_features // self.block_size

    def forward(
        self, x: torch.Tensor, in_mask: torch.Tensor | None = None, out_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        lead = x.shape[:-1]
        batch = math.prod(lead)

        def flat(mask: torch.Tensor | None, name: str) -> torch.Tensor | None:
            if mask is None:
                return None
            if mask.shape[:-1] != lead:
                raise ValueError(f"{name} leading shape {tuple(mask.shape[:-1])} differs from x's {tuple(lead)}")
            return mask.reshape(batch, mask.shape[-1])

        y = block_sparse_linear(
            x.reshape(batch, x.shape[-1]), self.weight, self.bias,
            in_mask=flat(in_mask, "in_mask"), out_mask=flat(out_mask, "out_mask"), block_size=self.block_size, backend=self.backend,
        )
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, block_size={self.block_size}, backend={self.backend!r}"
