"""block_sparse_linear: validation and dispatch to the reference, torch and Triton kernels."""

from __future__ import annotations

import os

import torch

from condcore.phases import phase
from condcore.ops.autograd import BlockSparseLinearFunction
from condcore.ops.packed_weights import frozen_weights
from condcore.ops.registry import BACKEND_DTYPES, BACKENDS, Kernel, find, skipping
from condcore.ops.validate import validate_linear_args, validate_out

REGIMES = ("auto", "grouped", "union")
# At or below this batch the union of active weight tiles is small enough that reading weights, not
# FLOPs, is the cost: the union path wins. Above it, grouping rows per output block wins.
UNION_MAX_BATCH = 16

__all__ = ["BACKENDS", "REGIMES", "UNION_MAX_BATCH", "block_sparse_linear", "frozen_weights", "pick_regime", "skipping", "triton_available"]


def triton_available(device: torch.device) -> bool:
    """Triton runs on CUDA devices, and on the CPU only under the interpreter (TRITON_INTERPRET=1)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    if device.type == "cuda":
        return True
    return device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1"


def _pick_backend(backend: str, x: torch.Tensor) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "triton" if x.device.type == "cuda" and triton_available(x.device) else "torch"
    if backend == "triton" and not triton_available(x.device):
        raise ValueError(
            f"backend 'triton' needs a CUDA tensor (x is on {x.device}) or TRITON_INTERPRET=1 for the CPU interpreter"
        )
    dtypes = BACKEND_DTYPES[backend]
    if x.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in sorted(dtypes, key=str))
        raise ValueError(f"backend {backend!r} supports {names}, not {str(x.dtype).removeprefix('torch.')}")
    return backend


def pick_regime(regime: str, batch: int) -> str:
    """The regime a call runs in: `regime` itself, or for "auto" the one its batch size calls for."""
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; choose one of {', '.join(REGIMES)}")
    if regime == "auto":
        return "union" if batch <= UNION_MAX_BATCH else "grouped"
    return regime


def block_sparse_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    in_mask: torch.Tensor | None = None,
    out_mask: torch.Tensor | None = None,
    block_size: int,
    backend: str = "auto",
    regime: str = "auto",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``((x * expand(in_mask)) @ weight.T + bias) * expand(out_mask)`` computed block-sparsely per example.

    x: (B, K); weight: (N, K) as in torch.nn.Linear; bias: (N,) or None; block_size k divides K and N.
    in_mask: (B, K/k) bool; where False, that input block is treated as zero (it may be skipped).
    out_mask: (B, N/k) bool; where False, that output block is exactly 0 and is not computed.
    backend: "reference" (the spec, any float dtype), "torch" (any device), "triton" (CUDA, or the CPU
    under TRITON_INTERPRET=1), "auto" (triton on CUDA, torch elsewhere).
    regime: "grouped" (rows grouped per output block; large batch), "union" (only the weight tiles
    some example needs; small batch), "auto" (union for B <= UNION_MAX_BATCH).
    out: optional preallocated (B, N) contiguous result; every element of it is written.
    Result in x's dtype with fp32 (fp64 for fp64) accumulation. weight and bias may be fp32 with
    fp16/bf16 x (mixed precision, as under autocast): they are rounded to x's dtype, and their gradients
    are fp32. Gradients flow to x, weight and bias: sparse after the torch grouped kernel with an output
    mask, the dense masked math otherwise (see condcore.ops.autograd).
    """
    with phase("validate"):
        shape = validate_linear_args(x, weight, bias, in_mask, out_mask, block_size)
        chosen = _pick_backend(backend, x)
        if shape.in_features == 0:  # nothing to multiply: the spec gives the masked bias on every device
            chosen = "reference"
        kernel: Kernel = find(chosen, pick_regime(regime, shape.batch))
        needs_grad = torch.is_grad_enabled() and (
            x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
        if out is not None:
            validate_out(out, x, shape, {"x": x, "weight": weight, "bias": bias, "in_mask": in_mask, "out_mask": out_mask})
    if bias is not None:
        # The kernels index the bias as a dense vector (oneDNN ignores a bias's stride): N elements, cheap.
        bias = bias.contiguous()
    if weight.dtype != x.dtype and not kernel.rounds_weight_itself:
        # Mixed precision: a kernel that does not round the weight itself (block by block) gets it
        # rounded whole here (autograd carries the gradient back to fp32).
        weight = weight.to(x.dtype)
        bias = None if bias is None else bias.to(x.dtype)
    if needs_grad:
        if out is not None:
            raise ValueError("out= is not supported when gradients are needed")
        return BlockSparseLinearFunction.apply(x, weight, bias, in_mask, out_mask, block_size, kernel)
    return kernel(x, weight, bias, in_mask, out_mask, block_size, out)
