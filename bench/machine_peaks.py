"""This machine's roofline, measured once per run: peak GEMM FLOP/s per dtype, and memory bandwidth.

The compute roof is the best rate square dense GEMMs reach in the dtype (what this machine and
its BLAS can do, not a datasheet's number); the memory roof is STREAM's copy (a = b) and triad
(a = b + s * c) on arrays far larger than any cache. Both go to env.json; each case's "fraction of
roofline" divides the least time they allow for its FLOPs and bytes by its measured time.
"""

from __future__ import annotations

import torch

from condcore.timing import median, time_interleaved

# Square GEMMs grow from 256 until one takes GEMM_SECONDS or reaches the device's largest size; the
# peak is the best rate of any of them (on a CPU a GEMM that fits in cache runs fastest: 512 here beat
# 2048 by a quarter), and the whole costs a fraction of a second per dtype, emulated dtypes included.
GEMM_MAX = {"cpu": 2048, "cuda": 8192}
GEMM_SECONDS = 0.01
STREAM_MBYTES = 256  # per array: far past a CPU's last-level cache (even a stacked one) and a GPU's L2
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


def stream_bandwidth(device: str, mbytes: int = STREAM_MBYTES) -> dict[str, float]:
    """Bytes/s of STREAM's copy (2 arrays moved) and triad (3 arrays), fp32, medians of interleaved rounds."""
    n = mbytes * 2**20 // 4
    b = torch.ones(n, dtype=torch.float32, device=device)
    c = torch.ones(n, dtype=torch.float32, device=device)
    a = torch.empty_like(b)
    samples = time_interleaved({"copy": lambda: a.copy_(b), "triad": lambda: torch.add(b, c, alpha=3.0, out=a)},
                               device, rounds=ROUNDS)
    size = n * 4
    return {"copy": 2 * size / median(samples["copy"]), "triad": 3 * size / median(samples["triad"])}


def measure_peaks(device: str, dtypes: list[str]) -> dict:
    """The roof of one device: {"gemm_flops": {dtype: FLOP/s}, "gemm_size": {dtype: n}, "copy_Bps",
    "triad_Bps"}."""
    stream = stream_bandwidth(device)
    gemms = {d: gemm_peak(device, getattr(torch, d)) for d in sorted(set(dtypes))}
    return {"gemm_flops": {d: rate for d, (rate, _) in gemms.items()}, "gemm_size": {d: n for d, (_, n) in gemms.items()},
            "copy_Bps": stream["copy"], "triad_Bps": stream["triad"]}


def memory_roof(peaks: dict) -> float:
    """The fastest of the measured streams: what a kernel moving bytes can hope for."""
    return max(peaks["copy_Bps"], peaks["triad_Bps"])
