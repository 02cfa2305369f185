"""Small-batch (decode) Triton kernel: read only the weight tiles some example of the batch needs.

One program per BLOCK_N output columns holds the whole batch (padded to BLOCK_B rows for tl.dot) and
walks the list of input blocks its output block needs (those of the (out-block, in-block) weight tiles
active for at least one example), so no other weight tile is read. The cost is the active weight
bytes, which is what bounds a decode step.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from condcore.ops.block_masks import recomputes_leaked_rows
from condcore.ops.call import LinearCall
from condcore.ops.routing import active_tile_pairs, needed_in_blocks
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
    # Kept short: every config compiles once per autotune key. Narrow BLOCK_N gives more programs
    # (decode has few output tiles per SM); wide BLOCK_K gives longer contiguous weight reads.
    return [triton.Config({"BLOCK_N": 16, "BLOCK_K": 16}, num_warps=2, num_stages=3)] + [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn in (16, 32, 64)
        for bk in (64, 128)
        for w, s in ((2, 3), (4, 4))
    ]


@triton.autotune(
    configs=configs(interpreting()),
    key=["K", "N", "BLOCK_SIZE", "BLOCK_B", "HAS_IN_MASK", "HAS_OUT_MASK", "INPUT_PRECISION"],
    prune_configs_by={"early_config_prune": fitting_configs},
)
@triton.jit
def _union_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr, needed_ptr, n_needed_ptr, in_mask_ptr, out_mask_ptr,
    B, K, N,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn, stride_im, stride_om, stride_needed,
    BLOCK_SIZE: tl.constexpr, HAS_BIAS: tl.constexpr, HAS_IN_MASK: tl.constexpr, HAS_OUT_MASK: tl.constexpr,
    INPUT_PRECISION: tl.constexpr, UPCAST: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    out_block = (tl.program_id(0) * BLOCK_N) // BLOCK_SIZE
    n_ok = offs_n < N
    offs_b = tl.arange(0, BLOCK_B)
    b_ok = offs_b < B
    chunks: tl.constexpr = BLOCK_SIZE // BLOCK_K

    acc = tl.zeros((BLOCK_B, BLOCK_N), dtype=tl.float32)
    # One flat loop over (needed input block, chunk of it), with no branch inside: Triton pipelines
    # it, so several weight tiles are in flight at once (cp.async in the sm_90 SASS), which is what
    # a weight-bytes-bound decode step needs.
    for step in range(tl.load(n_needed_ptr + out_block) * chunks):
        in_block = tl.load(needed_ptr + out_block * stride_needed + step // chunks)
        x_ok = b_ok
        if HAS_IN_MASK:
            x_ok = x_ok & (tl.load(in_mask_ptr + offs_b * stride_im + in_block, mask=b_ok, other=0) != 0)
        offs_k = in_block * BLOCK_SIZE + (step % chunks) * BLOCK_K + tl.arange(0, BLOCK_K)
        k_ok = offs_k < K  # an unmasked input may end in a partial block
        xt = tl.load(x_ptr + offs_b[:, None] * stride_xm + offs_k[None, :] * stride_xk,
                     mask=x_ok[:, None] & k_ok[None, :], other=0.0)
        wt = tl.load(w_ptr + offs_n[None, :].to(tl.int64) * stride_wn + offs_k[:, None] * stride_wk,
                     mask=n_ok[None, :] & k_ok[:, None], other=0.0)
        if UPCAST:
            xt, wt = xt.to(tl.float32), wt.to(tl.float32)
        acc = tl.dot(xt, wt, acc, input_precision=INPUT_PRECISION)
    if HAS_BIAS:
        acc += tl.load(bias_ptr + offs_n, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if HAS_OUT_MASK:
        row_on = tl.load(out_mask_ptr + offs_b * stride_om + out_block, mask=b_ok, other=0) != 0
        acc = tl.where(row_on[:, None], acc, 0.0)
    # Every element of y is stored, zeros included, so y needs no zero fill beforehand.
    y_ptrs = y_ptr + offs_b[:, None] * stride_ym + offs_n[None, :] * stride_yn
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=b_ok[:, None] & n_ok[None, :])


MAX_BATCH = 64  # rows per launch: the whole chunk of the batch sits in one register tile


# x's dropped blocks are masked in the loads, but a weight tile is shared by all the rows of a tile.
@recomputes_leaked_rows
def union_linear(call: LinearCall) -> torch.Tensor:
    """Launcher; arguments already validated by block_sparse_linear. Batches above MAX_BATCH rows run
    as several launches, each reading the weight tiles of its own chunk's union."""
    x, weight, bias, in_mask, out_mask, block_size, out, _ = call
    check_triton_block_size(block_size)
    batch, out_features = x.shape[0], weight.shape[0]
    y = out if out is not None else torch.empty(batch, out_features, dtype=x.dtype, device=x.device)
    for start in range(0, batch, MAX_BATCH):
        rows = slice(start, min(start + MAX_BATCH, batch))
        with phase("route"):
            launch = plan_launch(
                x[rows], weight, bias,
                None if in_mask is None else in_mask[rows], None if out_mask is None else out_mask[rows],
                block_size, y[rows],
            )
        with phase("gemm"):
            launch.run()
    return y


def plan_launch(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, in_mask: torch.Tensor | None,
                out_mask: torch.Tensor | None, block_size: int, y: torch.Tensor) -> KernelLaunch:
    """The kernel launch for one chunk of at most MAX_BATCH rows, writing all of y."""
    batch, in_features = x.shape
    out_features = weight.shape[0]
    in_blocks, out_blocks = triton.cdiv(in_features, block_size), triton.cdiv(out_features, block_size)
    pairs = active_tile_pairs(in_mask, out_mask, batch, in_blocks, out_blocks, x.device)
    needed, n_needed = needed_in_blocks(pairs)
    in_bytes = mask_as_bytes(in_mask, n_needed)
    out_bytes = mask_as_bytes(out_mask, n_needed)
    return KernelLaunch(
        _union_kernel,
        lambda meta: (triton.cdiv(out_features, meta["BLOCK_N"]),),
        (
            x, weight, bias if bias is not None else y, y, needed, n_needed, in_bytes, out_bytes,
            batch, in_features, out_features,
            x.stride(0), x.stride(1), weight.stride(0), weight.stride(1), y.stride(0), y.stride(1),
            in_bytes.stride(0) if in_mask is not None else 0, out_bytes.stride(0) if out_mask is not None else 0,
            needed.stride(0),
        ),
        {
            "BLOCK_SIZE": block_size, "HAS_BIAS": bias is not None, "HAS_IN_MASK": in_mask is not None,
            "HAS_OUT_MASK": out_mask is not None, "INPUT_PRECISION": dot_precision(x.dtype), "UPCAST": needs_upcast(x.dtype),
            "BLOCK_B": max(16, triton.next_power_of_2(batch)),
        },
    )
