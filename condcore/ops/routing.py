"""Per-example masks -> the topology the kernels walk (as MoE routing turns token choices into bins).

Large batch: the rows of each output block, grouped (block-major, rows ascending), with offsets.
Small batch: the union over the batch of active (out-block, in-block) weight tiles, and per output
block the list of input blocks it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RowGroups:
    """Rows whose output block j is active: rows[offsets[j]:offsets[j + 1]], ascending."""

    rows: torch.Tensor  # (nnz,) int64
    offsets: torch.Tensor  # (n_out_blocks + 1,) int64
    counts: list[int]  # host copy of the group sizes, for host-side loops and grid sizes


def group_rows_by_block(out_mask: torch.Tensor) -> RowGroups:
    # nonzero on the transposed mask is block-major with rows ascending: exactly the bins we need.
    block_row = out_mask.t().nonzero()
    counts_t = out_mask.sum(dim=0)
    offsets = torch.zeros(out_mask.shape[1] + 1, dtype=torch.int64, device=out_mask.device)
    torch.cumsum(counts_t, dim=0, out=offsets[1:])
    return RowGroups(rows=block_row[:, 1].contiguous(), offsets=offsets, counts=counts_t.tolist())


def row_tiles(groups: RowGroups, tile_rows: int) -> torch.Tensor:
    """(n_tiles, 2) int32 of (out_block, start offset into groups.rows): one GEMM tile each."""
    device = groups.rows.device
    counts = groups.offsets[1:] - groups.offsets[:-1]
    tiles_per_block = (counts + tile_rows - 1) // tile_rows
    n_tiles = int(tiles_per_block.sum())
    block = torch.repeat_interleave(torch.arange(len(counts), device=device), tiles_per_block, output_size=n_tiles)
    first_tile = torch.cumsum(tiles_per_block, 0) - tiles_per_block
    tile_in_block = torch.arange(n_tiles, device=device) - first_tile[block]
    start = groups.offsets[block] + tile_in_block * tile_rows
    return torch.stack([block, start], dim=1).to(torch.int32)


def active_tile_pairs(in_mask: torch.Tensor | None, out_mask: torch.Tensor | None, batch: int,
                      in_blocks: int, out_blocks: int, device: torch.device) -> torch.Tensor:
    """(out_blocks, in_blocks) bool: weight tile (j, i) is needed by at least one example of the batch."""
    def as_float(mask: torch.Tensor | None, n_blocks: int) -> torch.Tensor:
        if mask is None:
            return torch.ones(batch, n_blocks, dtype=torch.float32, device=device)
        return mask.to(torch.float32)

    return (as_float(out_mask, out_blocks).t() @ as_float(in_mask, in_blocks)) > 0


def needed_in_blocks(pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """From active_tile_pairs: (needed, n_needed), int32. Row j of needed lists the input blocks whose
    tile (j, i) is active, ascending, in its first n_needed[j] entries (the rest is padding). Built by
    a stable sort rather than nonzero, which would make the host wait for the GPU."""
    needed = torch.sort(pairs.to(torch.uint8), dim=1, descending=True, stable=True).indices
    return needed.to(torch.int32).contiguous(), pairs.sum(dim=1, dtype=torch.int32)
