"""The C++ large-batch CPU kernel (csrc/grouped_cpu.cpp): built on first use, then launched from here.

Built by torch.utils.cpp_extension (g++ and ninja; about 25 s once per machine and source version, then
loaded from torch's extension cache). Where it cannot be built, `grouped_linear` returns None and the
torch-ops kernel in cpu.py runs instead; `status()` says which and why. CONDBENCH_NATIVE=0 turns it
off, so the torch-ops kernel can be tested and timed too.
"""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path
from types import ModuleType

import torch

from condcore.ops.packed_weights import onednn_takes, packed_blocks
from condcore.ops.routing import RowGroups

SOURCE = Path(__file__).parent / "csrc" / "grouped_cpu.cpp"
_lock = threading.Lock()
_module: ModuleType | None = None
_error: str | None = None


def enabled() -> bool:
    return os.environ.get("CONDBENCH_NATIVE", "1") != "0"


def _load() -> ModuleType | None:
    global _module, _error
    if not enabled():
        return None
    with _lock:
        if _module is None and _error is None:
            try:
                from torch.utils.cpp_extension import load

                # -fopenmp makes at::parallel_for a real parallel region; the extension then shares
                # torch's libgomp (same soname), so there is one OpenMP runtime in the process.
                _module = load("condbench_grouped_cpu", sources=[str(SOURCE)], extra_cflags=["-O3", "-fopenmp"],
                               extra_ldflags=["-fopenmp"], verbose=False)
            except Exception as exc:  # noqa: BLE001 (any build failure means: use the torch-ops kernel)
                _error = _first_error_line(exc)
                warnings.warn(f"condbench: the C++ CPU kernel could not be built ({_error}); "
                              "using the torch-ops kernel", RuntimeWarning, stacklevel=3)
    return _module


def _first_error_line(exc: Exception) -> str:
    """The compiler's first 'error:' line if the build printed one, else the exception's last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return f"{type(exc).__name__}: {(errors or lines or [''])[0 if errors else -1]}"


def status(build: bool = True) -> str:
    """'native' when the C++ kernel is in use, else why not (for run environments and reports). With
    build=False it does not build the kernel just to answer (GPU runs never use it)."""
    if not enabled():
        return "off (CONDBENCH_NATIVE=0)"
    if not build and _module is None and _error is None:
        return "not built (no CPU grouped kernel ran)"
    return "native" if _load() is not None else f"unavailable ({_error})"


def balanced_bins(counts: list[int], n_bins: int) -> list[list[int]]:
    """Blocks dealt to n_bins threads, largest first to the least loaded (LPT): loads within one block."""
    bins: list[list[int]] = [[] for _ in range(max(1, n_bins))]
    load = [0] * len(bins)
    for block in sorted(range(len(counts)), key=lambda j: -counts[j]):
        i = load.index(min(load))
        bins[i].append(block)
        load[i] += counts[block]
    return bins


def grouped_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: RowGroups,
                   block_size: int, out: torch.Tensor | None) -> torch.Tensor | None:
    """y for contiguous x (dropped input blocks already zeroed) and the output mask's row groups, or
    None where the C++ kernel does not apply (not CPU, not built, disabled)."""
    if x.device.type != "cpu" or not x.is_contiguous():
        return None
    module = _load()
    if module is None:
        return None
    out_blocks = weight.shape[0] // block_size
    # oneDNN for every dtype it takes, also under mixed precision (the kernel rounds each fp32 block
    # first); packed blocks only where the weight already has x's dtype.
    onednn = onednn_takes(x.dtype) and weight.is_contiguous()
    blocks = packed_blocks(weight, block_size) if onednn and weight.dtype == x.dtype else None
    if blocks is None:
        blocks = [weight[j * block_size : (j + 1) * block_size] for j in range(out_blocks)]
    y = out if out is not None else torch.empty(x.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
    module.grouped_forward(x, blocks, bias, groups.rows, groups.offsets.tolist(),
                           balanced_bins(groups.counts, torch.get_num_threads()), block_size, onednn, y)
    return y
