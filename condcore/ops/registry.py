"""The kernel registry: one record per kernel, what it is and what it can do. Dispatch, autograd, the
suite schema's backend choices and the kernel tests all read it, so adding a kernel is its file plus
one record here."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from condcore.ops.validate import FLOAT_DTYPES

# (x, weight, bias, in_mask, out_mask, block_size, out=None) -> y; every element of y written
KernelFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Kernel:
    backend: str  # what a caller asks for: "reference", "torch", "triton"
    regime: str  # "grouped" (large batch), "union" (small batch), "any" (the reference runs both)
    function: str  # "module:name", imported on first use (Triton is optional at import time)
    devices: tuple[str, ...]  # where it runs; Triton also on the CPU under TRITON_INTERPRET=1
    dtypes: tuple[torch.dtype, ...]
    # "module:name" of a backward walking the same row groups (its work out-density x dense), or "":
    # after this kernel, autograd runs the dense masked math.
    sparse_backward: str = ""
    # Mixed precision (fp32 weight, fp16/bf16 x): whether the kernel rounds the weight itself, block by
    # block as it uses it; for the others dispatch rounds the whole weight first.
    rounds_weight_itself: bool = False

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.regime}"

    def load(self) -> KernelFn:
        return _resolve(self.function)

    def load_sparse_backward(self) -> Callable | None:
        return _resolve(self.sparse_backward) if self.sparse_backward else None


@functools.cache  # every block_sparse_linear call resolves its kernel: import once
def _resolve(path: str) -> Callable:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


KERNELS: tuple[Kernel, ...] = (
    Kernel("reference", "any", "condcore.ops.reference:reference_linear", ("cpu", "cuda"), FLOAT_DTYPES),
    Kernel("torch", "grouped", "condcore.ops.cpu:grouped_linear", ("cpu", "cuda"), FLOAT_DTYPES,
           sparse_backward="condcore.ops.cpu:grouped_linear_backward", rounds_weight_itself=True),
    Kernel("torch", "union", "condcore.ops.cpu:union_linear", ("cpu", "cuda"), FLOAT_DTYPES),
    Kernel("triton", "grouped", "condcore.ops.triton_grouped:grouped_linear", ("cuda",), FLOAT_DTYPES[:3]),
    Kernel("triton", "union", "condcore.ops.triton_union:union_linear", ("cuda",), FLOAT_DTYPES[:3]),
)

BACKENDS: tuple[str, ...] = ("auto", *dict.fromkeys(k.backend for k in KERNELS))
# What a benchmark may ask for: the reference is the spec the others are checked against, not a contender.
BENCHMARKED_BACKENDS: tuple[str, ...] = tuple(b for b in BACKENDS if b != "reference")
# The dtypes some kernel of each backend takes, for dispatch's check on every call.
BACKEND_DTYPES: dict[str, frozenset[torch.dtype]] = {
    b: frozenset(d for k in KERNELS if k.backend == b for d in k.dtypes) for b in BACKENDS if b != "auto"}


def find(backend: str, regime: str) -> Kernel:
    """The kernel of a backend (not "auto") for a regime ("grouped" or "union")."""
    for kernel in KERNELS:
        if kernel.backend == backend and kernel.regime in (regime, "any"):
            return kernel
    raise ValueError(f"no {backend} kernel for the {regime} regime")
