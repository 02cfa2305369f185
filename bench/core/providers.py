"""Providers: the ways of computing one block-sparse linear case that a benchmark puts side by side.

`dense` is x @ W.T as nn.Linear runs it; with the other dense paths every case times (DENSE_CANDIDATES)
it competes to be the case's baseline of record, the fastest of them, which every speedup divides. One
is ours (`block_sparse_linear` with the case's backend and regime), the others are the peers a user
would compare against. Each is registered here once; a suite's sweep lists the peers to run (`peers`), and
every provider is checked in float64 before it is timed, interleaved with the rest: the block-sparse
ones against the spec (condcore.ops.reference), the dense ones (the baseline, the best dense path),
which compute the whole layer with the masks ignored as nn.Linear would, against that product.
Adding a provider is one `register(Provider(...))` call here (or in a module of its own imported here).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch

from condcore.ops import block_sparse_linear
from condcore.ops.block_masks import zero_inactive_blocks
from condcore.ops.packed_weights import onednn_takes, unfrozen
from condcore.phases import phase
from condcore.problems import LinearProblem

ROLES = ("baseline", "ours", "peer")
Closure = Callable[[], torch.Tensor]


@dataclass(frozen=True)
class Provider:
    name: str
    role: str  # one of ROLES
    about: str  # one line for reports
    # (problem, backend, regime, out) -> a zero-argument call computing the case into `out` (allocated by
    # the caller, outside the timed region) or into a result of its own, which it returns
    build: Callable[[LinearProblem, str, str, torch.Tensor], Closure]
    # why it cannot run this problem, or "" when it can
    unsupported: Callable[[LinearProblem], str] = lambda p: ""
    # True: it computes the whole dense layer, masks ignored (the baseline, the best dense path), and is
    # checked against that product; False: the block-sparse spec, checked against condcore's reference
    dense: bool = False


PROVIDERS: dict[str, Provider] = {}


def register(provider: Provider) -> Provider:
    if provider.role not in ROLES:
        raise ValueError(f"provider {provider.name!r}: role must be one of {', '.join(ROLES)}")
    if provider.name in PROVIDERS:
        raise ValueError(f"provider {provider.name!r} is registered twice")
    PROVIDERS[provider.name] = provider
    return provider


def peer_names() -> tuple[str, ...]:
    return tuple(name for name, p in PROVIDERS.items() if p.role == "peer")


# The dense paths every kernel case times, whatever its sweep's peers: the fastest of them that computes
# the case correctly (with any dense peer the sweep adds) is the case's baseline of record, the one its
# headline speedup divides: over plain x @ W.T alone a speedup would credit ours with that path's slowness.
DENSE_CANDIDATES = ("dense", "dense_onednn", "dense_gemv")


def fastest_dense(times: dict[str, float]) -> str:
    """Of providers' median times, the fastest dense one's name (ties: the earlier registered)."""
    dense = [name for name in PROVIDERS if PROVIDERS[name].dense and name in times]
    return min(dense, key=lambda name: times[name])


def _dense(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    def call() -> torch.Tensor:
        with phase("gemm"):  # so that a profile names it (condcore.phases; free when not profiling)
            if p.bias is None:
                return torch.mm(p.x, p.weight.t(), out=out)
            return torch.addmm(p.bias, p.x, p.weight.t(), out=out)

    return call


def _ours(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    return lambda: block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend, regime=regime, out=out)


def _ours_direct(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    def call() -> torch.Tensor:
        with unfrozen():
            return block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend, regime=regime, out=out)

    return call


def _dense_wxt(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    # The other GEMM orientation, transposed back: for few rows some BLAS libraries run it faster, so a
    # sparse win over the baseline is not only a better orientation.
    if p.bias is None:
        return lambda: out.copy_(torch.mm(p.weight, p.x.t()).t())
    bias = p.bias.unsqueeze(1)
    return lambda: out.copy_(torch.addmm(bias, p.weight, p.x.t()).t())


def _dense_gemv(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    # One example: the matrix-vector product, the form a decode step would call.
    x, y = p.x[0], out[0]
    if p.bias is None:
        return lambda: torch.mv(p.weight, x, out=y).unsqueeze(0)
    return lambda: torch.addmv(p.bias, p.weight, x, out=y).unsqueeze(0)


def naive_gather_loop(p: LinearProblem, y: torch.Tensor) -> torch.Tensor:
    """What a user would write first: per output block, gather the active rows, GEMM, scatter back."""
    x = zero_inactive_blocks(p.x, p.in_mask, p.block_size)
    y.zero_()
    k = p.block_size
    for block in range(p.weight.shape[0] // k):
        rows = p.out_mask[:, block].nonzero().flatten()
        if len(rows):
            cols = slice(block * k, (block + 1) * k)
            part = x[rows] @ p.weight[cols].t()
            y[rows, cols] = part if p.bias is None else part + p.bias[cols]
    return y


def _naive(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    return lambda: naive_gather_loop(p, out)


def _weight_groups(p: LinearProblem) -> torch.Tensor:
    """W's output blocks as torch._grouped_mm's right-hand groups: (blocks, in_features, k), a view of W."""
    k = p.block_size
    return p.weight.view(p.weight.shape[0] // k, k, p.weight.shape[1]).transpose(1, 2)


def grouped_mm_routed(p: LinearProblem, groups: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Grouped GEMM with routing, as a mixture-of-experts layer runs its experts: each row copied once per
    active output block into that block's group (rows sorted by block), one torch._grouped_mm over the
    groups, the products scattered back into their rows' blocks."""
    x = zero_inactive_blocks(p.x, p.in_mask, p.block_size)
    blocks, rows = p.out_mask.t().nonzero(as_tuple=True)  # by block, then row
    ends = p.out_mask.sum(dim=0, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    parts = torch._grouped_mm(x[rows], groups, offs=ends)
    if p.bias is not None:
        parts += p.bias.view(-1, p.block_size)[blocks]
    y.zero_()
    y.view(y.shape[0], -1, p.block_size)[rows, blocks] = parts
    return y


def _grouped_mm(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    groups = _weight_groups(p)
    return lambda: grouped_mm_routed(p, groups, out)


def _grouped_mm_unsupported(p: LinearProblem) -> str:
    if p.out_mask is None:
        return "needs an output mask"
    if not hasattr(torch, "_grouped_mm"):
        return f"torch {torch.__version__} has no torch._grouped_mm"
    try:  # its layouts, dtypes and devices differ by torch version and GPU: asked of one row
        torch._grouped_mm(p.x[:1], _weight_groups(p)[:1], offs=torch.ones(1, dtype=torch.int32, device=p.x.device))
    except (RuntimeError, NotImplementedError) as exc:
        return f"torch._grouped_mm refuses {p.x.dtype} on {p.x.device.type}: {str(exc).splitlines()[0][:120]}"
    return ""


def _onednn_packed(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    # Ours packs weights once they are seen unchanged (condcore.ops.packed_weights): the same here, so a
    # sparse win over this peer is never the packing's.
    packed = torch.ops.mkldnn._reorder_linear_weight(p.weight)
    return lambda: torch.ops.mkldnn._linear_pointwise(p.x, packed, p.bias, "none", [], "")


def _onednn_unsupported(p: LinearProblem) -> str:
    if p.x.device.type != "cpu" or not onednn_takes(p.x.dtype):
        return f"oneDNN's inner product runs on CPU in the dtypes it takes here, not {p.x.dtype} on {p.x.device.type}"
    return ""


def _sampled_addmm(p: LinearProblem, backend: str, regime: str, out: torch.Tensor) -> Closure:
    # The output mask expanded to elements as a CSR pattern whose values are the bias: sampled_addmm
    # computes x @ W.T at those positions only and adds them.
    mask = p.out_mask.repeat_interleave(p.block_size, dim=1)
    bias = p.bias if p.bias is not None else torch.zeros(mask.shape[1], dtype=p.x.dtype, device=p.x.device)
    crow = torch.cat([mask.new_zeros(1, dtype=torch.int64), mask.sum(dim=1).cumsum(0)])
    with warnings.catch_warnings():  # torch calls its CSR support beta, once per process, on the user's terminal
        warnings.simplefilter("ignore", UserWarning)
        pattern = torch.sparse_csr_tensor(crow, mask.nonzero()[:, 1], bias.expand_as(mask)[mask], mask.shape,
                                          check_invariants=False)
    weight_t = p.weight.t()
    return lambda: out.copy_(torch.sparse.sampled_addmm(pattern, zero_inactive_blocks(p.x, p.in_mask, p.block_size), weight_t).to_dense())


def _sampled_addmm_unsupported(p: LinearProblem) -> str:
    if p.out_mask is None:
        return "needs an output mask"
    if p.x.device.type == "cpu" and p.x.dtype not in (torch.float32, torch.float64):
        return f"torch.sparse.sampled_addmm has no CPU kernel for {p.x.dtype}"
    return ""


register(Provider("dense", "baseline", "x @ W.T + b, what nn.Linear runs", _dense, dense=True))
register(Provider("ours", "ours", "block_sparse_linear, the case's backend and regime", _ours))
register(Provider("ours_direct", "peer", "block_sparse_linear called directly, weights not packed ahead: the path "
                  "a training step or a one-off call takes (ours runs inside frozen_weights, as inference does)",
                  _ours_direct))
register(Provider("dense_onednn", "peer", "the best dense CPU path: oneDNN's inner product on a packed weight",
                  _onednn_packed, _onednn_unsupported, dense=True))
register(Provider("dense_gemv", "peer", "torch.mv(W, x) + b: the matrix-vector form of one example", _dense_gemv,
                  lambda p: "" if p.x.shape[0] == 1 else "the matrix-vector form takes one example (batch 1)",
                  dense=True))
register(Provider("dense_wxt", "peer", "W @ x.T + b transposed back: the other GEMM orientation", _dense_wxt,
                  dense=True))
register(Provider("naive_gather", "peer", "per output block: gather the active rows, GEMM, scatter back", _naive,
                  lambda p: "" if p.out_mask is not None else "needs an output mask"))
register(Provider("grouped_mm", "peer", "grouped GEMM with routing (torch._grouped_mm): each row copied into each "
                  "active output block's group, one grouped GEMM, scattered back, as MoE layers run",
                  _grouped_mm, _grouped_mm_unsupported))
register(Provider("torch_sparse", "peer", "torch.sparse.sampled_addmm on the output mask as CSR", _sampled_addmm,
                  _sampled_addmm_unsupported))
