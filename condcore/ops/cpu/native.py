"""The C++ CPU kernels (csrc/: the large-batch grouped kernel, launched from here, and the pair kernels,
launched from pairs.py): one module, built on first use.

Built by torch.utils.cpp_extension (g++ and ninja; about 80 s once per machine and source version, then
loaded from torch's extension cache). Where it cannot be built, `applies` is False and dispatch runs the
torch-ops kernel in cpu.py instead; `status()` says which and why. CONDBENCH_NATIVE=0 turns it
off, so the torch-ops kernel can be tested and timed too.

The cache is shared by every checkout on the machine, so each source version (with torch's version
and the flags) builds into a folder of its own, named by their hash: two checkouts never load or
overwrite each other's build. Builders take an OS lock (flock) on that folder first, which dies with
its holder, so torch's own lock file found under it is stale and removed instead of waited on forever;
a live builder is waited for at most BUILD_WAIT_S. The build runs in a child process in a session of
its own, killed with everything it started (ninja, g++) on Ctrl-C or when this process dies.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

from condcore import phases
from condcore.ops.packed_weights import onednn_takes
from condcore.ops.routing import RowGroups

SOURCES = tuple(sorted((Path(__file__).parent / "csrc").glob("*.cpp")))
_lock = threading.Lock()
_module: ModuleType | None = None
_error: str | None = None


def enabled() -> bool:
    return os.environ.get("CONDBENCH_NATIVE", "1") != "0"


# -fopenmp makes at::parallel_for a real parallel region; the extension then shares torch's libgomp
# (same soname), so there is one OpenMP runtime in the process. -march=native: the CondNet forward's
# micro-kernel is written in GCC vector types, which become this CPU's widest FMAs (the build is per
# machine); -ffp-contract=fast lets them fuse, which ISO C++ mode (-std=c++17) otherwise forbids.
CFLAGS = ("-O3", "-fopenmp", "-march=native", "-ffp-contract=fast")
LDFLAGS = ("-fopenmp",)
BUILD_WAIT_S = 600.0  # a live build takes 25-100 s here; past this, another builder is taken to be stuck


def source_key() -> str:
    """Hash of what the built module depends on: the sources, torch's version, the flags."""
    digest = hashlib.sha256()
    for source in SOURCES:
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    digest.update(f"{torch.__version__}|{sys.version_info[:2]}|{CFLAGS}|{LDFLAGS}".encode())
    return digest.hexdigest()[:16]


def _name() -> str:
    return f"condbench_grouped_cpu_{source_key()}"


def build_directory() -> Path:
    from torch.utils.cpp_extension import get_default_build_root

    # torch's own loader honours TORCH_EXTENSIONS_DIR, but get_default_build_root does not.
    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()) / _name()


# Run by the child process that builds: it dies, with everything it started, when its parent does.
_BUILD_SCRIPT = """
import ctypes, os, signal, sys
signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (AttributeError, OSError):
    pass
if os.getppid() != int(sys.argv[1]):
    os.killpg(0, signal.SIGKILL)
from torch.utils.cpp_extension import load
load(sys.argv[2], sources=sys.argv[3].split(";"), extra_cflags=sys.argv[4].split(), extra_ldflags=sys.argv[5].split(),
     build_directory=sys.argv[6], verbose=False)
"""


def _build(folder: Path) -> None:
    """Builds the module into folder in a child process; raises RuntimeError with its output if it fails."""
    print(f"condbench: building the C++ CPU kernels into {folder} (about 80 s, once per machine and "
          "source version)", file=sys.stderr, flush=True)
    child = subprocess.Popen([sys.executable, "-c", _BUILD_SCRIPT, str(os.getpid()), _name(), ";".join(map(str, SOURCES)),
                              " ".join(CFLAGS), " ".join(LDFLAGS), str(folder)],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                             start_new_session=True)
    try:
        output, _ = child.communicate()
    except BaseException:  # Ctrl-C, a timeout: the build and all it started go with it
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        raise
    if child.returncode != 0:
        raise RuntimeError(f"Error building extension:\n{output}")


def _built(folder: Path) -> bool:
    return (folder / f"{_name()}.so").exists()


def _load_or_build() -> ModuleType:
    folder = build_directory()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".flock"), "a") as guard:
        deadline = time.monotonic() + BUILD_WAIT_S
        while True:
            try:
                fcntl.flock(guard, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"another process has been building it in {folder} for over "
                                       f"{BUILD_WAIT_S:.0f} s") from None
                time.sleep(0.5)
        # Every builder holds the flock above, so a lock file of torch's found now was left by a kill.
        (folder / "lock").unlink(missing_ok=True)
        if not _built(folder):
            _build(folder)
        return _import_built(folder)


def _import_built(folder: Path) -> ModuleType:
    """The built module, imported from its .so. Not through torch's `load`, which runs ninja again, and
    ninja rebuilds whenever the source's path differs from the last build's: two checkouts of the same
    source (a benchmark of a git revision beside the working tree) would rebuild on every load."""
    spec = importlib.util.spec_from_file_location(_name(), folder / f"{_name()}.so")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load() -> ModuleType | None:
    global _module, _error
    if not enabled():
        return None
    if _module is not None:  # every small-batch call comes here: no lock once loaded
        return _module
    with _lock:
        if _module is None and _error is None:
            try:
                _module = _load_or_build()
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
    return f"native (source {source_key()})" if _load() is not None else f"unavailable ({_error})"


def balanced_bins(counts: list[int], n_bins: int) -> list[list[int]]:
    """Blocks dealt to n_bins threads, largest first to the least loaded (LPT): loads within one block."""
    bins: list[list[int]] = [[] for _ in range(max(1, n_bins))]
    load = [0] * len(bins)
    for block in sorted(range(len(counts)), key=lambda j: -counts[j]):
        i = load.index(min(load))
        bins[i].append(block)
        load[i] += counts[block]
    return bins


def applies(x: torch.Tensor) -> bool:
    """Whether the C++ grouped kernel takes x: on the CPU, where it is built and not turned off (the
    first call on a machine builds it)."""
    return x.device.type == "cpu" and _load() is not None


def grouped_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, groups: RowGroups,
                   block_size: int, out: torch.Tensor | None, blocks: list[torch.Tensor] | None) -> torch.Tensor:
    """y for contiguous x (dropped input blocks already zeroed) and the output mask's row groups, where
    `applies` holds; blocks: weight's row blocks packed for oneDNN (packed_weights.packed_blocks), or None
    for the plain weight."""
    module = _load()
    out_blocks = weight.shape[0] // block_size
    # oneDNN for every dtype it takes, also under mixed precision (the kernel rounds each fp32 block
    # first); packed blocks only where the weight already has x's dtype.
    onednn = onednn_takes(x.dtype) and weight.is_contiguous()
    if blocks is None:
        blocks = [weight[j * block_size : (j + 1) * block_size] for j in range(out_blocks)]
    y = out if out is not None else torch.empty(x.shape[0], weight.shape[0], dtype=x.dtype, device=x.device)
    with phases.phase("route"):
        offsets, bins = groups.offsets.tolist(), balanced_bins(groups.counts, torch.get_num_threads())
    recorder = phases.active()
    timings = None if recorder is None else torch.zeros(len(bins), len(THREAD_PHASES) + 1, dtype=torch.int64)
    with phases.phase("threads"):
        module.grouped_forward(x, blocks, bias, groups.rows, offsets, bins, block_size, onednn, y, timings)
    if timings is not None:
        add_thread_phases(recorder, timings)
    return y


# The grouped kernel's per-thread phases, in the order of its timing columns (grouped_cpu.cpp's Phase),
# then its busy time.
THREAD_PHASES = ("zero_fill", "gather", "gemm", "scatter")


def add_thread_phases(recorder: phases.PhaseRecorder, timings: torch.Tensor,
                      names: tuple[str, ...] = THREAD_PHASES) -> None:
    """A C++ kernel's per-thread phases (one row of nanoseconds per thread, a column per name) as
    children of the "threads" phase, each the mean over the threads, so they add up to that phase's wall
    time with its remainder (fork, join, waiting for the slowest; a thread given no work waits it all)."""
    rows = timings.tolist()  # plain Python, not tensor ops: this runs inside every profiled call
    for column, name in enumerate(names):
        recorder.add(recorder.path(f"threads/{name}"), sum(row[column] for row in rows) / (1e9 * len(rows)))


if __name__ == "__main__":
    # `python -m condcore.ops.cpu.native`: build (or find) the kernel now, as an install step, and say which
    # kernel CPU runs will use; a machine that cannot build it runs the torch-ops kernel instead.
    print(f"C++ CPU kernels: {status()}")
