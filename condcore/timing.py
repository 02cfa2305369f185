"""Timing primitives shared by the kernel benchmark, the model benchmark and the suite runner.

CPU: the candidates interleaved round by round (drift and noise from a shared machine hit all of them
alike), timed with the garbage collector off. Warm caches: each sample is one warm-up call, then enough
calls for the slowest candidate to last about a millisecond, on the same data. Cold caches: each call
of a sample follows a flush of the caches (a buffer larger than the last-level cache streamed through
by the same threads, outside the timed region), as a layer of a deep model or a server between
requests sees its weights. GPU: triton.testing.do_bench (warm-up outside the timed region, L2 flushed
before every call), its 20/50/80% quantiles kept.
"""

from __future__ import annotations

import gc
import os
import random
import statistics
import time
from pathlib import Path
from typing import Callable, Literal

import torch

Timed = Callable[[], object]
SAMPLE_SECONDS = 1e-3
CacheState = Literal["cold", "warm"]
# Calls per cold sample, each after its own flush: a flush costs milliseconds, the call often microseconds.
COLD_CALLS = 3
# The flush streams this many times the last-level caches this process's CPUs share: enough that an
# approximate LRU (or AMD's victim L3) keeps none of the timed call's lines.
FLUSH_FACTOR = 2
FLUSH_MAX_BYTES = 1 << 30
FLUSH_UNKNOWN_BYTES = 256 << 20  # where the machine does not say (no sysfs): as large as STREAM's arrays


def last_level_cache_bytes() -> int | None:
    """The bytes of the last-level caches this process's CPUs use, each shared cache counted once (Linux
    sysfs); None where the machine does not say."""
    caches: dict[str, int] = {}
    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    for cpu in cpus:
        levels = []
        for index in Path(f"/sys/devices/system/cpu/cpu{cpu}/cache").glob("index[0-9]*"):
            try:
                kind, level = (index / "type").read_text().strip(), int((index / "level").read_text())
                size, shared = (index / "size").read_text().strip(), (index / "shared_cpu_list").read_text().strip()
            except (OSError, ValueError):
                continue
            if kind != "Instruction" and size[:-1].isdigit():
                scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size[-1])
                levels.append((level, shared, int(size[:-1]) * scale if scale else int(size)))
        if levels:
            level, shared, size = max(levels)
            caches[f"{level}:{shared}"] = size
    return sum(caches.values()) or None


class CacheFlush:
    """A call that evicts the CPU caches: it reads and writes every line of a buffer FLUSH_FACTOR times
    the last-level caches, with torch's threads (the ones the timed kernels run on, so each core's own
    L1 and L2 are flushed too)."""

    def __init__(self, llc_bytes: int | None = None):
        llc = llc_bytes or last_level_cache_bytes()
        self.bytes = min(FLUSH_MAX_BYTES, FLUSH_FACTOR * llc) if llc else FLUSH_UNKNOWN_BYTES
        if cap := os.environ.get("CONDBENCH_FLUSH_MBYTES"):
            # a smaller flush than the caches need: cold timings then are partly warm (the tests' tiny
            # runs, which read none; a flush of 960 MiB took 0.1 s on a VM reporting a 480 MiB L3)
            self.bytes = min(self.bytes, int(float(cap) * 2**20))
        self._buffer = torch.zeros(self.bytes // 4, dtype=torch.int32)

    def __call__(self) -> None:
        self._buffer.bitwise_not_()


def time_cpu_interleaved(fns: dict[str, Timed], rounds: int, warmup: int = 2, *,
                         settle_after: dict[str, float] | None = None, sample_s: float | None = None,
                         shuffle_seed: int | None = None, flush: Callable[[], None] | None = None,
                         calls: dict[str, int] | None = None,
                         sync: Callable[[], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each function, one sample per round, functions interleaved within a round.
    `sync` (torch.cuda.synchronize for work on a GPU) waits for the device before a sample's clock starts
    and before it stops, so a sample times its calls' device work and not only their launches: whole
    models on CUDA, where a call's launches, Python included, are part of what a user waits for.
    With `flush` (a CacheFlush), each sample is COLD_CALLS calls, each timed alone after a flush.
    `calls`, when given, receives each function's calls per sample (what a sample's seconds average).

    By default every sample makes the same number of calls, sized on the slowest candidate. For
    candidates whose costs differ a hundredfold (whole models under different runtimes), `sample_s`
    sizes each one's calls to last about that long instead. `settle_after` idles the machine for the
    given seconds after a candidate's sample: ONNX Runtime's worker threads keep spinning on the two
    cores after its last call, and the candidate after it ran up to 2.5x slower than alone
    (results/ab/model-crosstalk-20261203). `shuffle_seed` orders each round afresh (seeded), so that
    what one candidate leaves behind (evicted caches, threads still winding down) is not always paid
    by the same next one: a bias becomes spread, which the intervals then show."""
    if flush is not None and sync is not None:
        raise ValueError("flush and sync: a cold sample flushes the CPU's caches, it does not wait for a device")
    sync = sync or _no_sync
    per_call = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            per_call[name] = time.perf_counter() - start
    if sample_s is None:
        # The same number of calls per sample for every candidate, so each round compares like with
        # like; sized on the slowest, so a slow candidate cannot make a round take minutes.
        same = max(1, min(1000, int(SAMPLE_SECONDS / max(max(per_call.values()), 1e-9))))
        number = {name: same for name in fns}
    else:
        number = {name: max(1, min(1000, int(sample_s / max(t, 1e-9)))) for name, t in per_call.items()}
    if calls is not None:
        calls.update({name: COLD_CALLS if flush is not None else number[name] for name in fns})
    samples: dict[str, list[float]] = {name: [] for name in fns}
    order = list(fns)
    shuffle = random.Random(shuffle_seed).shuffle if shuffle_seed is not None else None
    for _ in range(rounds):
        if shuffle is not None:
            shuffle(order)
        for name in order:
            if flush is not None:
                samples[name].append(_cold_sample(fns[name], flush))
                continue
            # Sized samples warm up for a quarter of their calls: after a neighbour or an idle pause,
            # a 0.1 ms call's first few repeats ran up to 2x slow (threads and caches coming back).
            samples[name].append(_sample(fns[name], number[name], warm=1 if sample_s is None else max(1, number[name] // 4),
                                         sync=sync))
            if settle_after and settle_after.get(name, 0.0) > 0:
                time.sleep(settle_after[name])
    return samples


def _no_sync() -> None:
    pass


def _sample(fn: Timed, number: int, warm: int = 1, sync: Callable[[], None] = _no_sync) -> float:
    """Seconds per call over `number` calls, after one call that brings this candidate's data back
    into the caches (the previous candidate of the round evicted it). torch's Timer.timeit made two
    such calls per sample: with calls of a millisecond or more, two thirds of every round."""
    for _ in range(warm):
        fn()
    collecting = gc.isenabled()
    gc.disable()
    try:
        sync()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        sync()
        return (time.perf_counter() - start) / number
    finally:
        if collecting:
            gc.enable()


def _cold_sample(fn: Timed, flush: Callable[[], None]) -> float:
    """Seconds per call over COLD_CALLS calls, each after a flush, only the calls timed."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        total = 0.0
        for _ in range(COLD_CALLS):
            flush()
            start = time.perf_counter()
            fn()
            total += time.perf_counter() - start
        return total / COLD_CALLS
    finally:
        if collecting:
            gc.enable()


def time_gpu(fns: dict[str, Timed], cuda_graph: bool = False) -> dict[str, list[float]]:
    """Seconds per call of each function on CUDA: the 20/50/80% quantiles of do_bench, or with
    cuda_graph of do_bench_cudagraph (replaying a captured graph takes the CPU launch cost out of
    small-shape timings; the function must then be capturable, with no host synchronization)."""
    from triton.testing import do_bench, do_bench_cudagraph

    for fn in fns.values():
        fn()  # compilation and autotuning finish before timing
    torch.cuda.synchronize()
    out = {}
    for name, fn in fns.items():
        if cuda_graph:
            quantiles = do_bench_cudagraph(fn, rep=200, quantiles=[0.2, 0.5, 0.8])
        else:
            quantiles = do_bench(fn, warmup=25, rep=200, quantiles=[0.2, 0.5, 0.8])
        out[name] = [q * 1e-3 for q in quantiles]
    return out


def time_interleaved(fns: dict[str, Timed], device: str, rounds: int = 15, cuda_graph: bool = False,
                     flush: Callable[[], None] | None = None, calls: dict[str, int] | None = None) -> dict[str, list[float]]:
    """On CUDA do_bench (cold: it flushes the L2 before every call; warm under CUDA graphs, which replay
    the calls back to back); on the CPU warm, or cold with `flush`, each function's calls per sample
    into `calls` when given (do_bench's quantiles are no rounds: it stays empty on CUDA)."""
    if device == "cuda":
        return time_gpu(fns, cuda_graph)
    return time_cpu_interleaved(fns, rounds, flush=flush, calls=calls)


def cache_state(device: str, cache: CacheState, cuda_graph: bool) -> CacheState:
    """The cache state a timing really had: on CUDA do_bench's (cold) or a graph replay's (warm),
    whatever was asked; on the CPU the one asked for."""
    if device == "cuda":
        return "warm" if cuda_graph else "cold"
    return cache


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def iqr(samples: list[float]) -> float:
    if len(samples) < 2:
        return 0.0
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[2] - q[0]


CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_interval(samples: list[float], level: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile-bootstrap interval of the median of samples (e.g. per-round speedups of paired,
    interleaved rounds), seeded so that a report is reproducible from its rows."""
    import numpy as np
    from scipy.stats import bootstrap

    data = np.asarray(samples, dtype=float)
    if len(data) < 2 or np.ptp(data) == 0:
        return float(data.min()), float(data.max())
    result = bootstrap((data,), np.median, confidence_level=level, n_resamples=BOOTSTRAP_RESAMPLES,
                       method="percentile", random_state=np.random.default_rng(0))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def time_interval(samples: list[float], device: str) -> tuple[float, float]:
    """A median time's interval: on CPU the 95% bootstrap interval, on CUDA do_bench's 20%-80% range."""
    if device == "cuda":
        return samples[0], samples[-1]
    return bootstrap_interval(samples)


def speedup_interval(dense: list[float], sparse: list[float], device: str) -> tuple[float, float]:
    """The speedup's interval: on CPU a 95% bootstrap interval of the median per-round ratio; on CUDA,
    where do_bench keeps only quantiles, the range from (dense 20% / sparse 80%) to (dense 80% /
    sparse 20%), wider than a confidence interval."""
    if device == "cuda":
        return dense[0] / sparse[-1], dense[-1] / sparse[0]
    return bootstrap_interval(ratio_samples(dense, sparse))


def ratio_samples(numerator: list[float], denominator: list[float]) -> list[float]:
    """Per-round ratios of two interleaved series (on GPU: of matching quantiles)."""
    return [a / b for a, b in zip(numerator, denominator)]



def independent_ratio_interval(numerator: list[float], denominator: list[float],
                               level: float = CONFIDENCE) -> tuple[float, float]:
    """A 95% percentile-bootstrap interval of median(numerator) / median(denominator) for two series
    NOT timed in the same rounds (each resampled on its own): wider than a paired interval, as it
    should be, since drift between the two timings is not cancelled. Seeded, like bootstrap_interval."""
    import numpy as np

    a, b = np.asarray(numerator, dtype=float), np.asarray(denominator, dtype=float)
    rng = np.random.default_rng(0)
    ratios = [np.median(rng.choice(a, len(a))) / np.median(rng.choice(b, len(b))) for _ in range(BOOTSTRAP_RESAMPLES)]
    tail = 100 * (1 - level) / 2
    return float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))
