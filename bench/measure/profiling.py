"""Where one call's time and memory go: its phases, a trace, its peak memory, the machine's counters.

Each takes a zero-argument call (a provider's, or a model's forward) that has already run once, and
measures it apart from the timing, so profiling never touches a timed number:
- `phase_breakdown`: the call's phases (condcore.phases), as the mean over the calls whose total lies
  in the middle half of all totals; the rest of the call (dispatch, Python, allocation) is `rest`.
  Plain calls, timed alternately with the instrumented ones, give the total the phases are held to.
- `write_trace`: a Chrome / Perfetto trace of a few calls, every thread (the C++ kernel's included),
  and on CUDA each GPU kernel's device time per call.
- `extra_memory_bytes`: the peak memory a call needs beyond what was allocated before it was built.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import gzip
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
import torch

from condcore import phases

Call = Callable[[], object]
REST = "rest"
# A phase's own time, beside its children's (for "threads": fork, join and waiting for the slowest)
SELF = "self"


@dataclass
class PhaseBreakdown:
    total_s: float  # the instrumented call (the mean over the middle half of the calls)
    plain_s: float  # the same call uninstrumented, timed interleaved with it, the same way
    phases: dict[str, float]  # leaf phase path -> seconds per call; they add up to total_s
    calls: int  # instrumented calls (as many plain ones ran between them)


def sync(device: str) -> None:
    """Waits for the device's queued work (CUDA launches are asynchronous); nothing on the CPU."""
    if device == "cuda":
        torch.cuda.synchronize()


def _middle_half(values: list[float]) -> tuple[float, float]:
    """The bounds of the middle half of values (the 25th and 75th percentile entries)."""
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 4], ordered[(3 * n - 1) // 4]


def phase_breakdowns(calls: dict[str, Call], device: str = "cpu", *, min_seconds: float = 0.5,
                     min_calls: int = 10, max_calls: int = 5000) -> dict[str, PhaseBreakdown]:
    """Each call's phases, and its plain time. Round by round each call warms up (`_warm_up`), then runs
    instrumented and plain, then the next call: the busy spells of a shared machine fall on all of
    them alike, so their ratios hold as the timing's do. `min_seconds` per call. On CUDA the phases are host time (launches run
    asynchronously), and each call is synchronized so that its total is the device's."""
    recorders = {name: phases.PhaseRecorder() for name in calls}
    plain: dict[str, list[float]] = {name: [] for name in calls}
    rounds = 0
    deadline = time.perf_counter() + min_seconds * len(calls)
    collecting = gc.isenabled()
    gc.disable()  # as the timing does
    try:
        while rounds < max_calls and (rounds < min_calls or time.perf_counter() < deadline):
            for name, call in calls.items():
                _warm_up(call, device)
                # Which of the two runs first alternates, so that what one leaves behind for the
                # other (caches, a thread still spinning) falls on both alike.
                for instrumented in ((True, False) if rounds % 2 == 0 else (False, True)):
                    if instrumented:
                        recorder = recorders[name]
                        with phases.recording(recorder), recorder.call():
                            call()
                            sync(device)
                    else:
                        begin = time.perf_counter()
                        call()
                        sync(device)
                        plain[name].append(time.perf_counter() - begin)
            rounds += 1
    finally:
        if collecting:
            gc.enable()
    return {name: _breakdown(recorders[name].calls, plain[name]) for name in calls}


WARM_UP_S = 1e-3  # as long as the timing's samples (condcore.timing.SAMPLE_SECONDS)


def _warm_up(call: Call, device: str) -> None:
    """Calls until WARM_UP_S has passed (at least once): after another provider's call, the caches and
    that call's threads (OpenMP workers spin a while after a parallel region) take a while to settle."""
    end = time.perf_counter() + WARM_UP_S
    while True:
        call()
        sync(device)
        if time.perf_counter() >= end:
            return


def phase_breakdown(call: Call, device: str = "cpu", **options) -> PhaseBreakdown:
    """One call's phases and plain time (phase_breakdowns)."""
    return phase_breakdowns({"call": call}, device, **options)["call"]


def _breakdown(recorded: list[tuple[float, dict[str, float]]], plain: list[float]) -> PhaseBreakdown:
    low, high = _middle_half([total for total, _ in recorded])
    middle = [(total, ph) for total, ph in recorded if low <= total <= high]
    mean_total = sum(total for total, _ in middle) / len(middle)
    paths = {path for _, ph in middle for path in ph}
    inclusive = {path: sum(ph.get(path, 0.0) for _, ph in middle) / len(middle) for path in paths}
    low, high = _middle_half(plain)
    plain_middle = [t for t in plain if low <= t <= high]
    return PhaseBreakdown(mean_total, sum(plain_middle) / len(plain_middle), leaf_phases(inclusive, mean_total),
                          len(plain))


def leaf_phases(inclusive: dict[str, float], total: float) -> dict[str, float]:
    """Inclusive phase times (nested by path) -> exclusive leaves adding up to total: a phase with
    children keeps what they leave as `<phase>/self`, and the call's unmarked time is `rest`."""
    leaves: dict[str, float] = {}
    for path, seconds in sorted(inclusive.items()):
        children = [p for p in inclusive if p.rpartition("/")[0] == path]
        if children:
            leaves[f"{path}/{SELF}"] = seconds - sum(inclusive[c] for c in children)
        else:
            leaves[path] = seconds
    top = sum(s for p, s in inclusive.items() if "/" not in p)
    leaves[REST] = total - top
    return leaves


def _profiler_config():
    """Every thread's events (the C++ kernel's workers too), where this torch can (2.5 and later)."""
    with contextlib.suppress(AttributeError, TypeError):
        return torch._C._profiler._ExperimentalConfig(profile_all_threads=True)
    return None


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 to /dev/null for the block (C++ writes to it directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def write_trace(call: Call, path: Path, device: str = "cpu", *, calls: int = 3) -> dict[str, float]:
    """A Chrome trace of `calls` calls at `path` (gzipped JSON: name it .json.gz); on CUDA, each GPU
    kernel's device seconds per call."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    config = _profiler_config()
    options = {"experimental_config": config} if config is not None else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    prof = profile(activities=activities, **options)
    with _stderr_silenced():  # Kineto prints a line to stderr at each start and stop, through any log level
        prof.start()
    try:
        with phases.tracing():
            for _ in range(calls):
                with torch.profiler.record_function("condbench::call"):
                    call()
                sync(device)
    finally:
        with _stderr_silenced():
            prof.stop()
    # Gzipped: a model's trace is megabytes of JSON; Perfetto and chrome://tracing open .json.gz as is.
    plain = path.with_suffix("")  # x.json.gz -> x.json
    prof.export_chrome_trace(str(plain))
    with open(plain, "rb") as source, gzip.open(path, "wb") as target:
        shutil.copyfileobj(source, target)
    plain.unlink()
    if device != "cuda":
        return {}
    kernels = {}
    for event in prof.key_averages():
        device_us = getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0)
        if device_us and str(getattr(event, "device_type", "")).endswith("CUDA"):
            kernels[event.key] = device_us / 1e6 / calls
    return kernels


def _trim_heap() -> None:
    """Hands freed heap memory back to the OS, so that the resident size counts live memory only."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak_rss() -> bool:
    """Resets the kernel's high-water mark of this process's resident size (Linux 4.0+)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int | None:
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path("/proc/self/status").read_text().splitlines()
        return int(next(line for line in status if line.startswith("VmHWM:")).split()[1]) * 1024
    return None


def extra_memory_bytes(make_call: Callable[[], Call], device: str = "cpu", *, calls: int = 3) -> int | None:
    """Peak memory above the starting point while `make_call()` builds a call (its output, packed
    weights, ...) and it runs `calls` times: on CPU the resident size (psutil; the kernel's high-water
    mark, reset first), on CUDA the caching allocator's peak. None where the peak cannot be read."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        call = make_call()
        for _ in range(calls):
            call()
        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - start)
    _trim_heap()
    if not _reset_peak_rss():
        return None
    start = psutil.Process().memory_info().rss
    call = make_call()
    for _ in range(calls):
        call()
    peak = _peak_rss()
    return None if peak is None else max(0, peak - start)


