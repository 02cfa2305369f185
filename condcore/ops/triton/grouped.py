"""Large-batch Triton kernel: one program per (output block, tile of that block's active rows).

Rows are gathered by index inside the kernel and results stored straight to their place in y, so the
gather, the GEMM and the scatter are one kernel (a torch gather + grouped GEMM + scatter pays three
round trips through memory). Dropped input blocks are masked out of the loads, so their bytes are not read.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from condcore.ops.block_masks import recomputes_leaked_rows
from condcore.ops.call import LinearCall
from condcore.ops.routing import group_rows_by_block, row_tiles
from condcore.phases import phase
from condcore.ops.triton.common import (
    KernelLaunch,
    check_triton_block_size,
    dot_precision,
    fitting_configs,
    interpreting,
    mask_as_bytes,
    needs_upcast,
)


def configs(for_interpreter: bool) -> list[triton.Config]:
    if for_interpreter:
        return [triton.Config({"BLOCK_N": 16, "BLOCK_K": 16}, num_warps=4, num_stages=1)]
    # Kept short: every config compiles once per autotune key, and a GPU suite has a dozen keys.
    return [triton.Config({"BLOCK_N": 16, "BLOCK_K": 16}, num_warps=4, num_stages=3)] + [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn in (32, 64, 128)
        for bk in (32, 64)
        for w, s in ((4, 3), (8, 4))
    ]


@triton.autotune(
    configs=configs(interpreting()),
    # Every value the pruning reads is in the key (Triton adds the tensors' dtypes itself).
    key=["K", "N", "BLOCK_SIZE", "BLOCK_M", "HAS_IN_MASK", "INPUT_PRECISION"],
    prune_configs_by={"early_config_prune": fitting_configs},
)
@triton.jit
def _grouped_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr, rows_ptr, offsets_ptr, tiles_ptr, in_mask_ptr,
    K, N,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn, stride_im,
    BLOCK_SIZE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_IN_MASK: tl.constexpr, INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    tile = tl.program_id(0)
    block = tl.load(tiles_ptr + 2 * tile)
    start = tl.load(tiles_ptr + 2 * tile + 1)
    end = tl.load(offsets_ptr + block + 1)

    offs_m = start + tl.arange(0, BLOCK_M)
    row_ok = offs_m < end
    rows = tl.load(rows_ptr + offs_m, mask=row_ok, other=0).to(tl.int64)
    offs_n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    cols = (block * BLOCK_SIZE + offs_n).to(tl.int64)
    col_ok = (offs_n < BLOCK_SIZE) & (cols < N)

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_ok = offs_k < K
        x_ok = row_ok[:, None] & k_ok[None, :]
        if HAS_IN_MASK:
            # BLOCK_K divides BLOCK_SIZE (launcher), so one input block covers the whole chunk. Dropped
            # blocks are masked out of the load (no bytes move) but not branched around: a branch in
            # this loop stops Triton from pipelining its loads (no cp.async in the sm_90 SASS, see
            # triton_compile_check), and with a tile of 32+ rows some row nearly always needs the block.
            row_on = tl.load(in_mask_ptr + rows * stride_im + k0 // BLOCK_SIZE, mask=row_ok, other=0) != 0
            x_ok = x_ok & row_on[:, None]
        xt = tl.load(x_ptr + rows[:, None] * stride_xm + offs_k[None, :] * stride_xk, mask=x_ok, other=0.0)
        wt = tl.load(
            w_ptr + cols[None, :] * stride_wn + offs_k[:, None] * stride_wk,
            mask=col_ok[None, :] & k_ok[:, None],
            other=0.0,
        )
        if UPCAST:
            xt, wt = xt.to(tl.float32), wt.to(tl.float32)
        acc = tl.dot(xt, wt, acc, input_precision=INPUT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + cols, mask=col_ok, other=0.0).to(tl.float32)[None, :]
    y_ptrs = y_ptr + rows[:, None] * stride_ym + cols[None, :] * stride_yn
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=row_ok[:, None] & col_ok[None, :])


def rows_per_tile(batch: int, out_blocks: int, active: int) -> int:
    """Tile height from the mean rows per active block: tall tiles for big groups, short for narrow ones."""
    if interpreting():
        return 16
    mean_rows = active / max(out_blocks, 1)
    return 128 if mean_rows >= 512 else 64 if mean_rows >= 64 else 32 if mean_rows >= 32 else 16


# x's dropped blocks are masked in the loads, but a weight tile is shared by all the rows of a tile.
@recomputes_leaked_rows
def grouped_linear(call: LinearCall) -> torch.Tensor:
    """Launcher; arguments already validated by block_sparse_linear."""
    x, weight, bias, in_mask, out_mask, block_size, out, _ = call
    check_triton_block_size(block_size)
    batch, out_features = x.shape[0], weight.shape[0]
    with phase("zero_fill"):
        # Rows whose output block is off are never stored to: zero-filling y first covers them.
        y = out.zero_() if out is not None else torch.zeros(batch, out_features, dtype=x.dtype, device=x.device)
    with phase("route"):
        launch = plan_launch(x, weight, bias, in_mask, out_mask, block_size, y)
    if launch is not None:
        with phase("gemm"):
            launch.run()
    return y


def plan_launch(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    in_mask: torch.Tensor | None,
    out_mask: torch.Tensor | None,
    block_size: int,
    y: torch.Tensor,
) -> KernelLaunch | None:
    """The kernel launch that writes y's active blocks, or None when no row has an active block."""
    batch, in_features = x.shape
    out_features = weight.shape[0]
    if out_mask is None:
        out_mask = torch.ones(batch, triton.cdiv(out_features, block_size), dtype=torch.bool, device=x.device)
    groups = group_rows_by_block(out_mask)
    block_m = rows_per_tile(batch, out_mask.shape[1], len(groups.rows))
    tiles = row_tiles(groups, block_m)
    if len(tiles) == 0:
        return None
    in_bytes = mask_as_bytes(in_mask, groups.rows)
    return KernelLaunch(
        _grouped_kernel,
        lambda meta: (len(tiles), triton.cdiv(block_size, meta["BLOCK_N"])),
        (
            x, weight, bias if bias is not None else y, y, groups.rows, groups.offsets, tiles, in_bytes,
            in_features, out_features,
            x.stride(0), x.stride(1), weight.stride(0), weight.stride(1), y.stride(0), y.stride(1),
            in_bytes.stride(0) if in_mask is not None else 0,
        ),
        {
            "BLOCK_SIZE": block_size, "HAS_BIAS": bias is not None, "HAS_IN_MASK": in_mask is not None,
            "INPUT_PRECISION": dot_precision(x.dtype), "UPCAST": needs_upcast(x.dtype), "BLOCK_M": block_m,
        },
    )
