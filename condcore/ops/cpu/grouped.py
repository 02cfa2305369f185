"""The torch backend's large-batch paths (condcore.ops.registry holds their order and when each applies).

For each output block, gather its active rows and run one dense GEMM over them, so the FLOPs are
out-density x dense. On CPU the same algorithm runs in C++ (cpu/native.py: whole blocks per thread)
where it could be built; the torch-ops version below is its fallback, and both run on oneDNN blocks
packed ahead inside `frozen_weights()`. Without an output mask there is nothing to skip: one dense GEMM
(masked_dense_linear). In front of them, for fp32 on the CPU inside `frozen_weights()`, the C++ pair
kernel (cpu/pairs.py). Dropped input blocks are zeroed, not skipped: with per-row input masks inside
one GEMM there is nothing to skip without shrinking the GEMMs to k x k. Zeroing equals skipping unless
the weight holds inf or NaN there; the rows that then turn non-finite are recomputed by the spec.
grouped_linear_backward: the gradients of these paths over the same row groups (training).
"""

from __future__ import annotations

import threading

import torch

from condcore import phases
from condcore.ops.cpu import native
from condcore.ops.block_masks import recomputes_leaked_rows, zero_inactive_blocks
from condcore.ops.call import LinearCall
from condcore.ops.packed_weights import onednn_takes, packed_blocks, packs_blocks
from condcore.ops.reference import accumulation_dtype
from condcore.ops.routing import RowGroups, group_rows_by_block

_workspaces = threading.local()


def _workspace(numel: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A reused scratch buffer: a fresh multi-MB allocation per call costs page faults comparable to the
    gather itself on CPU. Thread-local, so concurrent callers never share one."""
    cache = _workspaces.__dict__.setdefault("buffers", {})
    key = (dtype, device)
    buf = cache.get(key)
    if buf is None or buf.numel() < numel:
        buf = torch.empty(numel, dtype=dtype, device=device)
        cache[key] = buf
    return buf[:numel]


def linear_rows(x: torch.Tensor, weight_rows: torch.Tensor, bias: torch.Tensor | None,
                packed_rows: torch.Tensor | None = None) -> torch.Tensor:
    """x @ weight_rows.T + bias for one output block. On CPU, oneDNN's inner product when it applies
    (on packed_rows, weight_rows in oneDNN's layout, when given): measured here (2 threads, fp32,
    K=2048, 128 outputs) it ran 0.97 of dense-GEMM efficiency at 102 rows where MKL's addmm ran 0.80,
    and the narrow GEMMs of a sparse layer are exactly that shape."""
    if (
        onednn_takes(x.dtype)
        and x.device.type == "cpu"
        and x.dtype == weight_rows.dtype
        and x.is_contiguous()
        and weight_rows.is_contiguous()
    ):
        w = packed_rows if packed_rows is not None else weight_rows
        return torch.ops.mkldnn._linear_pointwise(x, w, bias, "none", [], "")
    return torch.addmm(bias, x, weight_rows.t()) if bias is not None else x @ weight_rows.t()


def _dense(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor | None = None) -> torch.Tensor:
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def without_output_mask(call: LinearCall) -> bool:
    return call.out_mask is None


@recomputes_leaked_rows  # dropped input blocks are zeroed, not skipped (see the module docstring)
def masked_dense_linear(call: LinearCall) -> torch.Tensor:
    """No output mask, so no blocks to skip: one GEMM over the masked input (under mixed precision the
    weight is rounded once, whole)."""
    x, weight, bias = _masked_input(call), call.weight, call.bias
    with phases.phase("gemm"):
        return _dense(x, weight.to(x.dtype), None if bias is None else bias.to(x.dtype), call.out)


def _masked_input(call: LinearCall) -> torch.Tensor:
    with phases.phase("mask_input"):
        return zero_inactive_blocks(call.x, call.in_mask, call.block_size).contiguous()


def _routed(call: LinearCall) -> tuple[torch.Tensor, RowGroups]:
    """x with its dropped blocks zeroed, and the rows of each output block."""
    x = _masked_input(call)
    with phases.phase("route"):
        return x, group_rows_by_block(call.out_mask)


def cpp_built(call: LinearCall) -> bool:
    return native.applies(call.x)


def cpp_built_and_packs(call: LinearCall) -> bool:
    return packs_blocks(call.weight, call.x.dtype) and native.applies(call.x)


def packs(call: LinearCall) -> bool:
    return packs_blocks(call.weight, call.x.dtype)


@recomputes_leaked_rows
def grouped_cpp(call: LinearCall) -> torch.Tensor:
    x, groups = _routed(call)
    return native.grouped_linear(x, call.weight, call.bias, groups, call.block_size, call.out, None)


@recomputes_leaked_rows
def grouped_cpp_packed(call: LinearCall) -> torch.Tensor:
    x, groups = _routed(call)
    blocks = packed_blocks(call.weight, call.block_size)
    return native.grouped_linear(x, call.weight, call.bias, groups, call.block_size, call.out, blocks)


@recomputes_leaked_rows
def grouped_torch(call: LinearCall) -> torch.Tensor:
    return _gathered_linear(call, None)


@recomputes_leaked_rows
def grouped_torch_packed(call: LinearCall) -> torch.Tensor:
    return _gathered_linear(call, packed_blocks(call.weight, call.block_size))


def _gathered_linear(call: LinearCall, packed: list[torch.Tensor] | None) -> torch.Tensor:
    """One GEMM per active output block over its gathered rows, on packed blocks where given."""
    x, groups = _routed(call)
    weight, bias, block_size, out = call.weight, call.bias, call.block_size, call.out
    batch, in_features = x.shape
    out_features = weight.shape[0]
    out_blocks = out_features // block_size
    nnz = len(groups.rows)
    # One reused gather buffer, block after block, so it stays in cache (and a fresh multi-MB tensor
    # per call would page-fault).
    gathered = _workspace(max(groups.counts) * in_features, x.dtype, x.device).view(-1, in_features)
    offsets = groups.offsets.tolist()
    # Mixed precision (fp32 weight, fp16/bf16 x): each active block's weight is rounded as it is used.
    mixed = weight.dtype != x.dtype
    results = []
    for block in range(out_blocks):
        lo, hi = offsets[block], offsets[block + 1]
        if lo == hi:
            continue
        cols = slice(block * block_size, (block + 1) * block_size)
        with phases.phase("gather"):
            xg = torch.index_select(x, 0, groups.rows[lo:hi], out=gathered[: hi - lo])
        with phases.phase("gemm"):
            w, b = weight[cols], None if bias is None else bias[cols]
            if mixed:
                w, b = w.to(x.dtype), None if b is None else b.to(x.dtype)
            results.append(linear_rows(xg, w, b, None if packed is None else packed[block]))
    with phases.phase("scatter"):
        results.append(torch.zeros(1, block_size, dtype=x.dtype, device=x.device))
        results = torch.cat(results)
        # Each (row, block) of y reads its result or the zero row: y is written once, no zero fill first.
        source = torch.full((batch * out_blocks,), nnz, dtype=torch.int64, device=x.device)
        block_of = torch.repeat_interleave(torch.arange(out_blocks, device=x.device), groups.offsets.diff(), output_size=nnz)
        source[groups.rows * out_blocks + block_of] = torch.arange(nnz, device=x.device)
        y = out if out is not None else torch.empty(batch, out_features, dtype=x.dtype, device=x.device)
        torch.index_select(results, 0, source, out=y.view(batch * out_blocks, block_size))
    return y


def grouped_linear_backward(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    weight: torch.Tensor,
    in_mask: torch.Tensor | None,
    out_mask: torch.Tensor,
    block_size: int,
    needs: tuple[bool, bool, bool],
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Gradients of grouped_linear for x, weight and bias (those flagged in `needs`), walking the same
    per-output-block row groups as the forward, so the backward's work is out-density x dense too.

    Per active output block j with rows R_j and g_j = grad_y[R_j, block j]:
        grad_w[block j] = g_j.T @ x_masked[R_j]      (blocks no row uses get exactly 0)
        grad_x[R_j]    += g_j @ weight[block j]       (then masked by in_mask, as the forward zeroed x)
    grad_x is accumulated in fp32 (fp64 for fp64): up to N/k blocks add into each row. grad_w and
    grad_b come in weight's dtype (fp32 under mixed precision, where each block of the weight is
    rounded to x's dtype as it is used, as in the forward).
    """
    k = block_size
    acc = accumulation_dtype(x.dtype)
    groups = group_rows_by_block(out_mask)
    offsets = groups.offsets.tolist()
    x_masked = zero_inactive_blocks(x, in_mask, k)
    grad_x = torch.zeros(x.shape, dtype=acc, device=x.device) if needs[0] else None
    grad_w = torch.empty_like(weight) if needs[1] else None
    for block in range(weight.shape[0] // k):
        lo, hi = offsets[block], offsets[block + 1]
        rows, cols = groups.rows[lo:hi], slice(block * k, (block + 1) * k)
        if lo == hi:
            if grad_w is not None:
                grad_w[cols].zero_()
            continue
        g = torch.index_select(grad_y[:, cols], 0, rows)
        if grad_w is not None:
            xg = torch.index_select(x_masked, 0, rows)
            if grad_w.dtype == g.dtype:
                torch.mm(g.t(), xg, out=grad_w[cols])
            else:
                grad_w[cols].copy_(g.t() @ xg)
        if grad_x is not None:
            grad_x.index_add_(0, rows, (g @ weight[cols].to(g.dtype)).to(acc))
    if grad_x is not None:
        grad_x = zero_inactive_blocks(grad_x, in_mask, k).to(x.dtype)
    grad_b = zero_inactive_blocks(grad_y.to(acc), out_mask, k).sum(dim=0).to(weight.dtype) if needs[2] else None
    return grad_x, grad_w, grad_b
