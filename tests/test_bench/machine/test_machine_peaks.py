"""This machine's roofline, measured: positive, and below what any CPU of its thread count could do."""

from __future__ import annotations

import pytest
import torch

from bench.machine.peaks import GEMM_MAX, gemm_peak, measure_peaks, memory_roof

pytestmark = pytest.mark.alone  # timings or the machine's load: never beside other tests (pyproject)

# Nominal ceilings no CPU core reaches: 6 GHz x 64 fp32 FLOP per cycle (two AVX-512 FMA units) per
# thread, and 1 TB/s of memory bandwidth for a CPU socket.
NOMINAL_FLOPS_PER_THREAD = 6e9 * 64
NOMINAL_BYTES_PER_S = 1e12


@pytest.fixture(autouse=True)
def real_stream_size(monkeypatch):
    """STREAM on arrays far past the caches, as a real run (tests/conftest.py shrinks them)."""
    monkeypatch.delenv("CONDBENCH_STREAM_MBYTES", raising=False)


def test_peaks_are_positive_and_below_the_nominal_ones():
    peaks = measure_peaks("cpu", ["float32", "float32"])
    assert set(peaks["gemm_flops"]) == {"float32"}
    flops = peaks["gemm_flops"]["float32"]
    assert 0 < flops < NOMINAL_FLOPS_PER_THREAD * torch.get_num_threads()
    assert 0 < peaks["copy_Bps"] < NOMINAL_BYTES_PER_S and 0 < peaks["triad_Bps"] < NOMINAL_BYTES_PER_S
    assert memory_roof(peaks) == max(peaks["copy_Bps"], peaks["triad_Bps"])
    assert 256 <= peaks["gemm_size"]["float32"] <= GEMM_MAX["cpu"]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_slow_dtype_stops_growing_its_gemm_early(dtype, monkeypatch):
    """Where a dtype is emulated the GEMM does not grow to the largest size: the budget bounds it."""
    monkeypatch.setattr("bench.machine.peaks.GEMM_SECONDS", 0.0)
    rate, n = gemm_peak("cpu", dtype)
    assert n == 256 and rate > 0
