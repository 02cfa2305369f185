"""One block_sparse_linear call as the dispatch table sees it: its validated arguments, and the notes a
path's test leaves for the path (a plan worked out to decide whether the path applies is not worked
out twice)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class LinearCall(NamedTuple):
    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    in_mask: torch.Tensor | None
    out_mask: torch.Tensor | None
    block_size: int
    out: torch.Tensor | None
    notes: dict

    @property
    def args(self) -> tuple:
        """(x, weight, bias, in_mask, out_mask, block_size): the spec's arguments."""
        return self[:6]
