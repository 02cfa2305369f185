"""This machine's roofline, measured once per run: peak GEMM FLOP/s per dtype, and memory bandwidth.

The compute roof is the best rate square dense GEMMs reach in the dtype (what this machine and
its BLAS can do, not a datasheet's number); the memory roof is STREAM's copy (a = b) and triad
(a = b + s * c) on arrays far larger than any cache (DRAM: the roof of a case timed with cold caches),
and again on arrays that fit in the last-level cache (the roof of a case timed warm, whose bytes may
come from there). All go to env.json; each case's "fraction of roofline" divides the least time they
allow for its FLOPs and bytes by its measured time.
"""

from __future__ import annotations

import math
import os

import torch

from condcore.timing import CacheState, last_level_cache_bytes, median, time_interleaved

# Square GEMMs grow from 256 until one takes GEMM_SECONDS or reaches the device's largest size; the
# peak is the best rate of any of them (on a CPU a GEMM that fits in cache runs fastest: 512 here beat
# 2048 by a quarter), and the whole costs a fraction of a second per dtype, emulated dtypes included.
GEMM_MAX = {"cpu": 2048, "cuda": 8192}
GEMM_SECONDS = 0.01
# Per array: far past a CPU's last-level cache (even a stacked one) and a GPU's L2. The environment's
# CONDBENCH_STREAM_MBYTES, read at each measurement, lowers it (the tests' tiny runs: 16).
STREAM_MBYTES = 256
ROUNDS = 5


def gemm_peak(device: str, dtype: torch.dtype) -> tuple[float, int]:
    """(FLOP/s, n): the best round of the fastest n x n x n GEMM tried (a peak, not a median)."""
    best_rate, best_n, n = 0.0, 0, 256
    while True:
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        b = torch.randn(n, n, generator=gen).to(device=device, dtype=dtype)
        out = torch.empty(n, n, device=device, dtype=dtype)
        seconds = min(time_interleaved({"gemm": lambda: torch.mm(a, b, out=out)}, device, rounds=ROUNDS)["gemm"])
        if 2.0 * n**3 / seconds > best_rate:
            best_rate, best_n = 2.0 * n**3 / seconds, n
        if seconds >= GEMM_SECONDS or n >= GEMM_MAX[device]:
            return best_rate, best_n
        n *= 2


def stream_bandwidth(device: str, mbytes: float | None = None) -> dict[str, float]:
    """Bytes/s of STREAM's copy (2 arrays moved) and triad (3 arrays), fp32, medians of interleaved rounds;
    arrays of `mbytes` each, at most (and by default) the largest size allowed."""
    n = int(min(mbytes or math.inf, largest_stream_mbytes()) * 2**20) // 4
    b = torch.ones(n, dtype=torch.float32, device=device)
    c = torch.ones(n, dtype=torch.float32, device=device)
    a = torch.empty_like(b)
    samples = time_interleaved({"copy": lambda: a.copy_(b), "triad": lambda: torch.add(b, c, alpha=3.0, out=a)},
                               device, rounds=ROUNDS)
    size = n * 4
    return {"copy": 2 * size / median(samples["copy"]), "triad": 3 * size / median(samples["triad"])}


def largest_stream_mbytes() -> float:
    return float(os.environ.get("CONDBENCH_STREAM_MBYTES", STREAM_MBYTES))


# In-cache STREAM: each array this share of the last-level cache, so that triad's three stay within it.
CACHED_SHARE = 1 / 8


def measure_peaks(device: str, dtypes: list[str]) -> dict:
    """The roof of one device: {"gemm_flops": {dtype: FLOP/s}, "gemm_size": {dtype: n}, "copy_Bps",
    "triad_Bps"}, and on a CPU whose last-level cache is known "llc_bytes" and "cached_copy_Bps",
    "cached_triad_Bps" (the streams on arrays within it)."""
    stream = stream_bandwidth(device)
    gemms = {d: gemm_peak(device, getattr(torch, d)) for d in sorted(set(dtypes))}
    peaks = {"gemm_flops": {d: rate for d, (rate, _) in gemms.items()}, "gemm_size": {d: n for d, (_, n) in gemms.items()},
             "copy_Bps": stream["copy"], "triad_Bps": stream["triad"]}
    llc = last_level_cache_bytes() if device == "cpu" else None
    if llc:
        cached = stream_bandwidth(device, llc * CACHED_SHARE / 2**20)
        peaks.update(llc_bytes=llc, cached_copy_Bps=cached["copy"], cached_triad_Bps=cached["triad"])
    return peaks


def memory_roof(peaks: dict, cache: CacheState = "cold") -> float:
    """The fastest of the measured streams a case's bytes may come at: DRAM's for cold caches; for warm
    ones the last-level cache's where it was measured (and faster)."""
    dram = max(peaks["copy_Bps"], peaks["triad_Bps"])
    if cache == "warm" and "cached_copy_Bps" in peaks:
        return max(dram, peaks["cached_copy_Bps"], peaks["cached_triad_Bps"])
    return dram
