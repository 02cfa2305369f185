"""The kernel registry and its dispatch table: one record per kernel (a backend's code for a regime),
what it can do, and the ordered paths it runs. Dispatch, autograd, the suite schema's backend choices
and the kernel tests all read it, so adding a kernel or a path is its code plus one line here.

A kernel's paths are tried in order, once per call: the first whose test holds for the call's inputs
(dtype, device, block width, whether the C++ kernels built, whether the weights are frozen) runs, and
its name is what `condcore.ops.kernel_log` records, so a row says which code computed it. The last path
of every kernel applies to every input its kernel takes.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from condcore.ops.call import LinearCall
from condcore.ops.kernel_log import KERNEL_NAMES, ran
from condcore.ops.validate import FLOAT_DTYPES


@dataclass(frozen=True)
class Path:
    name: str  # what it runs, as kernel_log records it (a key of KERNEL_NAMES)
    function: str  # "module:name" of (LinearCall) -> y, every element of y written
    applies: str = ""  # "module:name" of (LinearCall) -> bool; "" where it takes every call that reaches it

    def __post_init__(self) -> None:
        if self.name not in KERNEL_NAMES:
            raise ValueError(f"path {self.name!r} is not in kernel_log.KERNEL_NAMES")


@dataclass(frozen=True)
class Kernel:
    backend: str  # what a caller asks for: "reference", "torch", "triton"
    regime: str  # "grouped" (large batch), "union" (small batch), "any" (the reference runs both)
    paths: tuple[Path, ...]  # in the order dispatch tries them
    devices: tuple[str, ...]  # where it runs; Triton also on the CPU under TRITON_INTERPRET=1
    dtypes: tuple[torch.dtype, ...]
    # "module:name" of a backward walking the same row groups (its work out-density x dense), or "":
    # after this kernel, autograd runs the dense masked math.
    sparse_backward: str = ""
    # Mixed precision (fp32 weight, fp16/bf16 x): whether the kernel rounds the weight itself, block by
    # block as it uses it; for the others dispatch rounds the whole weight first.
    rounds_weight_itself: bool = False

    def __post_init__(self) -> None:
        if not self.paths or self.paths[-1].applies:
            raise ValueError(f"{self.backend}-{self.regime}: its last path must take every call")

    @property
    def name(self) -> str:
        return f"{self.backend}-{self.regime}"

    def __call__(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 in_mask: torch.Tensor | None, out_mask: torch.Tensor | None, block_size: int,
                 out: torch.Tensor | None = None) -> torch.Tensor:
        """y by the first of the kernel's paths that applies to these (validated) arguments."""
        call = LinearCall(x, weight, bias, in_mask, out_mask, block_size, out, {})
        skipped = getattr(_skipping, "names", ()) if _skipping_depth else ()
        for name, applies, function in self._table:
            if name in skipped or (applies is not None and not applies(call)):
                continue
            ran(name)
            return function(call)
        raise ValueError(f"every path of {self.name} is skipped here ({', '.join(sorted(skipped))})")

    @functools.cached_property  # resolved on first use (Triton is optional at import time), then kept
    def _table(self) -> tuple[tuple[str, Callable | None, Callable], ...]:
        return tuple((p.name, _resolve(p.applies) if p.applies else None, _resolve(p.function)) for p in self.paths)

    def load_sparse_backward(self) -> Callable | None:
        return _resolve(self.sparse_backward) if self.sparse_backward else None


def _resolve(path: str) -> Callable:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


_skipping = threading.local()
_skipping_depth = 0  # skipping() blocks open in any thread: each call reads the thread-local only then
_skipping_lock = threading.Lock()


@contextlib.contextmanager
def skipping(*names: str) -> Iterator[None]:
    """Within this block, this thread's calls pass over the paths named (kernel_log names), so the path
    after them runs and can be tested and timed: e.g. skipping("pairs-cpp-packed") inside
    frozen_weights() runs the grouped kernels on packed blocks."""
    if unknown := [n for n in names if n not in KERNEL_NAMES]:
        raise ValueError(f"unknown kernel path(s) {', '.join(unknown)}; known: {', '.join(KERNEL_NAMES)}")
    global _skipping_depth
    before = getattr(_skipping, "names", ())
    _skipping.names = frozenset(before) | frozenset(names)
    with _skipping_lock:
        _skipping_depth += 1
    try:
        yield
    finally:
        with _skipping_lock:
            _skipping_depth -= 1
        _skipping.names = before


# The C++ pair kernel runs in front of both torch regimes where it applies (condcore.ops.cpu.grouped's docstring).
PAIRS = Path("pairs-cpp-packed", "condcore.ops.cpu.pairs:pairs_linear", "condcore.ops.cpu.pairs:pairs_apply")

KERNELS: tuple[Kernel, ...] = (
    Kernel("reference", "any", (Path("reference", "condcore.ops.reference:reference_call"),), ("cpu", "cuda"),
           FLOAT_DTYPES),
    Kernel("torch", "grouped", (
        PAIRS,
        Path("dense-gemm", "condcore.ops.cpu.grouped:masked_dense_linear", "condcore.ops.cpu.grouped:without_output_mask"),
        Path("grouped-cpp-packed", "condcore.ops.cpu.grouped:grouped_cpp_packed", "condcore.ops.cpu.grouped:cpp_built_and_packs"),
        Path("grouped-cpp", "condcore.ops.cpu.grouped:grouped_cpp", "condcore.ops.cpu.grouped:cpp_built"),
        Path("grouped-torch-packed", "condcore.ops.cpu.grouped:grouped_torch_packed", "condcore.ops.cpu.grouped:packs"),
        Path("grouped-torch", "condcore.ops.cpu.grouped:grouped_torch"),
    ), ("cpu", "cuda"), FLOAT_DTYPES, sparse_backward="condcore.ops.cpu.grouped:grouped_linear_backward",
        rounds_weight_itself=True),
    Kernel("torch", "union", (
        PAIRS,
        Path("union-dense-fallback", "condcore.ops.cpu.union:union_dense_fallback", "condcore.ops.cpu.union:union_covers_most_tiles"),
        Path("union-torch", "condcore.ops.cpu.union:union_linear"),
    ), ("cpu", "cuda"), FLOAT_DTYPES),
    Kernel("triton", "grouped", (Path("triton-grouped", "condcore.ops.triton.grouped:grouped_linear"),), ("cuda",),
           FLOAT_DTYPES[:3]),
    Kernel("triton", "union", (Path("triton-union", "condcore.ops.triton.union:union_linear"),), ("cuda",),
           FLOAT_DTYPES[:3]),
)

BACKENDS: tuple[str, ...] = ("auto", *dict.fromkeys(k.backend for k in KERNELS))
DEVICES: tuple[str, ...] = tuple(dict.fromkeys(d for k in KERNELS for d in k.devices))
# What a benchmark may ask for: the reference is the spec the others are checked against, not a contender.
BENCHMARKED_BACKENDS: tuple[str, ...] = tuple(b for b in BACKENDS if b != "reference")
# The dtypes some kernel of each backend takes, for dispatch's check on every call.
BACKEND_DTYPES: dict[str, frozenset[torch.dtype]] = {
    b: frozenset(d for k in KERNELS if k.backend == b for d in k.dtypes) for b in BACKENDS if b != "auto"}
# What a benchmark may ask for: the dtypes every benchmarked backend takes (float64 is the spec's, for
# checks), widest first.
BENCHMARKED_DTYPES: tuple[torch.dtype, ...] = tuple(sorted(
    (d for d in FLOAT_DTYPES if all(d in BACKEND_DTYPES[b] for b in BENCHMARKED_BACKENDS if b != "auto")),
    key=lambda d: -d.itemsize))


def find(backend: str, regime: str) -> Kernel:
    """The kernel of a backend (not "auto") for a regime ("grouped" or "union")."""
    for kernel in KERNELS:
        if kernel.backend == backend and kernel.regime in (regime, "any"):
            return kernel
    raise ValueError(f"no {backend} kernel for the {regime} regime")
