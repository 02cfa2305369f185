"""Which kernel computed a block_sparse_linear call: each code path names itself as it runs, and a
caller inside `kernels_used()` reads the names back. One call can take a path that depends on its
dtype, device, blocks, whether the C++ kernels built and whether the weights are frozen (packed ahead),
so a benchmark row says what it measured instead of what the backend's name suggests. When nothing
records (every timed call), a path's `ran()` is one global read."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

# Every name a path may record, and what it runs (the reports' legend).
KERNEL_NAMES = {
    "pairs-cpp-packed": "C++ pair kernel: each row runs only its active (input, output) block pairs on a weight "
                        "packed ahead (fp32, CPU, inside frozen_weights)",
    "grouped-cpp": "C++ grouped kernel: per output block, one GEMM over its gathered rows, whole blocks per thread",
    "grouped-cpp-packed": "the C++ grouped kernel on oneDNN blocks packed ahead (inside frozen_weights)",
    "grouped-torch": "torch ops: per output block, gather its rows, GEMM, scatter",
    "grouped-torch-packed": "the torch-ops grouped path on oneDNN blocks packed ahead (inside frozen_weights)",
    "dense-gemm": "one dense GEMM over the masked input: no output mask to skip blocks of",
    "union-torch": "torch ops: one GEMM per rectangle of the weight tiles some row needs",
    "union-dense-fallback": "one dense GEMM: the needed tiles covered most of the weight",
    "triton-grouped": "Triton grouped kernel",
    "triton-union": "Triton union kernel",
    "reference": "the float64-capable spec (condcore.ops.reference), also where rows are recomputed",
}

_depth = 0  # recorders open in any thread: the one test `ran` makes when nothing records
_local = threading.local()
_lock = threading.Lock()


def ran(name: str) -> None:
    """Called by a kernel path as it computes a call."""
    if _depth:
        names = getattr(_local, "names", None)
        if names is not None and name not in names:
            names.append(name)


@contextlib.contextmanager
def kernels_used() -> Iterator[list[str]]:
    """The names of the kernel paths that ran in this thread inside the block, in order, each once."""
    global _depth
    outer, names = getattr(_local, "names", None), []
    _local.names = names
    with _lock:
        _depth += 1
    try:
        yield names
    finally:
        with _lock:
            _depth -= 1
        _local.names = outer
        if outer is not None:
            outer.extend(n for n in names if n not in outer)


def spelled(names: list[str]) -> str:
    """The names as a row stores them: "pairs-cpp-packed", or "union-torch+reference" when one call took two."""
    return "+".join(names)
