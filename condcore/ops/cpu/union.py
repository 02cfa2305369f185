"""The torch backend's small-batch (decode) paths (condcore.ops.registry holds their order and when
each applies): the cost is reading weights, so only the weight tiles in the union over the batch of
active (out-block, in-block) pairs are read; where they cover most of W, one dense GEMM instead
(union_dense_fallback). In front of them, for fp32 on the CPU inside `frozen_weights()`, the C++ pair
kernel (cpu/pairs.py).
"""

from __future__ import annotations

import torch

from condcore import phases
from condcore.ops.block_masks import recompute_leaked_rows, zero_inactive_blocks
from condcore.ops.call import LinearCall
from condcore.ops.routing import active_tile_pairs


# Above this fraction of W's tiles, one GEMM over all of W costs less than many narrow ones (measured
# here, B=16, K=N=2048, iid masks at 0.25: rectangles over 0.7 of W ran 0.69x of the dense W @ x.T).
DENSE_FALLBACK_TILE_FRACTION = 0.5


def true_runs(flags: list[bool]) -> list[tuple[int, int]]:
    """[start, end) of each run of consecutive True entries (plain Python: these lists are short, and a
    torch op per call would cost more than the decode GEMMs it schedules)."""
    runs, start = [], None
    for i, flag in enumerate(flags):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(flags)))
    return runs


Rectangles = list[tuple[int, int, list[tuple[int, int]]]]


def union_rectangles(in_mask: torch.Tensor | None, out_mask: torch.Tensor | None, batch: int, in_blocks: int,
                     out_blocks: int, device: torch.device) -> Rectangles:
    """The weight rectangles union_linear reads: (j0, j1, [(i0, i1), ...]) for each run [j0, j1) of output
    blocks some example needs, with the runs of input blocks some example needs for one of them."""
    if batch == 1:
        # One example: each of its active output blocks needs exactly its active input blocks, read off
        # the two mask rows (a decode call costs ~0.2 ms; the tile-pair product below took a third).
        out_active = out_mask[0].tolist() if out_mask is not None else [True] * out_blocks
        in_runs = true_runs(in_mask[0].tolist()) if in_mask is not None else [(0, in_blocks)]
        return [(j0, j1, in_runs) for j0, j1 in true_runs(out_active)]
    pairs = active_tile_pairs(in_mask, out_mask, batch, in_blocks, out_blocks, device)
    # An output block active for some row still needs its bias even when none of its input tiles is.
    out_any = out_mask.any(dim=0).tolist() if out_mask is not None else [True] * out_blocks
    needed = pairs.tolist()
    return [(j0, j1, true_runs([any(column) for column in zip(*needed[j0:j1])])) for j0, j1 in true_runs(out_any)]


def _union_plan(call: LinearCall) -> Rectangles:
    """The call's rectangles (union_rectangles), worked out once per call: the dense fallback's test
    leaves them in the call's notes for union_linear."""
    plan = call.notes.get("rectangles")
    if plan is None:
        x, k = call.x, call.block_size
        # Rounded up: an unmasked side may end in a partial block, which the slices below clamp.
        plan = union_rectangles(call.in_mask, call.out_mask, x.shape[0], -(-x.shape[1] // k),
                                -(-call.weight.shape[0] // k), x.device)
        call.notes["rectangles"] = plan
    return plan


def union_covers_most_tiles(call: LinearCall) -> bool:
    """Whether the rectangles union_linear would read cover DENSE_FALLBACK_TILE_FRACTION of W's tiles or
    more: then one dense GEMM reads the same bytes with less overhead."""
    k = call.block_size
    in_blocks, out_blocks = -(-call.x.shape[1] // k), -(-call.weight.shape[0] // k)
    with phases.phase("route"):
        tiles_read = sum((j1 - j0) * (i1 - i0) for j0, j1, in_runs in _union_plan(call) for i0, i1 in in_runs)
    return tiles_read >= DENSE_FALLBACK_TILE_FRACTION * in_blocks * out_blocks


def union_dense_fallback(call: LinearCall) -> torch.Tensor:
    """union_linear's algorithm on one rectangle, the whole of W."""
    k = call.block_size
    return _union(call, [(0, -(-call.weight.shape[0] // k), [(0, -(-call.x.shape[1] // k))])], exact=False)


def union_linear(call: LinearCall) -> torch.Tensor:
    """Small-batch path: read only weight tiles some example of the batch needs, without copying any.

    Runs of consecutive active output blocks are taken together; within a run, each run of consecutive
    needed input blocks is one GEMM on a strided view of the weight (GEMMs take a leading dimension, so
    a rectangle of W needs no copy). This reads the union's tiles plus the holes of each rectangle.
    """
    # With one example, the tiles read are exactly its active ones: nothing read needs zeroing and
    # nothing written needs masking, which saves two passes where the call is all overhead.
    with phases.phase("route"):
        plan = _union_plan(call)
    return _union(call, plan, exact=call.x.shape[0] == 1)


def _union(call: LinearCall, plan: Rectangles, exact: bool) -> torch.Tensor:
    x, weight, bias, in_mask, out_mask, k, out, _ = call
    batch, out_features = x.shape[0], weight.shape[0]
    if not exact:
        with phases.phase("mask_input"):
            x = zero_inactive_blocks(x, in_mask, k)
    with phases.phase("zero_fill"):
        y = out if out is not None else torch.empty(batch, out_features, dtype=x.dtype, device=x.device)
        y.zero_()
    # Each run's product, transposed: (columns, part or None); all written into y after the GEMMs.
    parts: list[tuple[slice, torch.Tensor | None]] = []
    with phases.phase("gemm"):
        for j0, j1, in_runs in plan:
            cols = slice(j0 * k, j1 * k)
            w_run = weight[cols]
            # W @ x.T, not x @ W.T: with a few rows, MKL runs this orientation ~1.6x faster (measured at
            # B=16, K=N=2048), as W streams through as the large operand instead of being packed.
            part_t = None
            for i0, i1 in in_runs:
                w_tiles, x_run_t = w_run[:, i0 * k : i1 * k], x[:, i0 * k : i1 * k].t()
                if part_t is not None:
                    part_t.addmm_(w_tiles, x_run_t)
                elif bias is not None:
                    part_t = torch.addmm(bias[cols].unsqueeze(1), w_tiles, x_run_t)
                else:
                    part_t = w_tiles @ x_run_t
            parts.append((cols, part_t))
    with phases.phase("scatter"):
        for cols, part_t in parts:
            if part_t is not None:
                y[:, cols] = part_t.t()
            elif bias is not None:
                y[:, cols] = bias[cols]
    if out_mask is not None and not exact:
        with phases.phase("zero_fill"):
            y.masked_fill_(~out_mask.repeat_interleave(k, dim=1), 0)
    # The exact path reads no tile its example drops; the others read tiles some rows drop.
    return y if exact else recompute_leaked_rows(y, x, weight, bias, in_mask, out_mask, k)
