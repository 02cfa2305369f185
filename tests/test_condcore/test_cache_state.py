"""Cache state as a parameter: a cold sample flushes the caches before every timed call, a warm one
reuses them; each row records which, its roofline takes the bandwidth that state allows, and a
row faster than its roofline is flagged rather than reported as a figure."""

from __future__ import annotations

import pytest
import torch

from bench.machine.peaks import memory_roof
from bench.measure.kernel import ROOFLINE_TOLERANCE, run_kernel_case
from bench.plan.cases import KernelCase, kernel_cases
from bench.plan.suite import parse_suite
from condcore.timing import CacheFlush, cache_state, last_level_cache_bytes, median, time_cpu_interleaved

pytestmark = pytest.mark.alone  # timings or the machine's load: never beside other tests (pyproject)


@pytest.fixture(autouse=True)
def real_flush(monkeypatch):
    """Flushes sized on the caches, as in a real run (tests/conftest.py caps them), made afresh."""
    from bench.measure import kernel

    monkeypatch.delenv("CONDBENCH_FLUSH_MBYTES", raising=False)
    monkeypatch.setattr(kernel, "_flush", None)


def case(**fields) -> KernelCase:
    base = dict(sweep="k", device="cpu", dtype="float32", backend="auto", regime="auto", batch=4, in_features=256,
                out_features=256, block_size=32, density=0.5, masks="out", mask_source="iid")
    return KernelCase(**{**base, **fields})


def test_a_cold_sample_is_slower_than_a_warm_one_for_a_weight_that_fits_in_the_cache():
    llc = last_level_cache_bytes() or 32 << 20
    n = 512
    while 4 * (2 * n) ** 2 <= llc // 4:  # the largest square fp32 weight within a quarter of the cache
        n *= 2
    gen = torch.Generator().manual_seed(0)
    w, x = torch.randn(n, n, generator=gen), torch.randn(1, n, generator=gen)
    out = torch.empty(1, n)
    gemv = lambda: torch.mm(x, w.T, out=out)  # noqa: E731
    flush = CacheFlush()
    assert flush.bytes >= 2 * 4 * n * n
    warm = time_cpu_interleaved({"gemv": gemv}, rounds=15)["gemv"]
    cold = time_cpu_interleaved({"gemv": gemv}, rounds=15, flush=flush)["gemv"]
    # the same call, its weight read from DRAM instead of the cache: a ratio in one process, no threshold on time
    assert median(cold) > median(warm), (median(cold), median(warm))


def test_the_flush_is_sized_on_the_machine_s_last_level_cache():
    llc = last_level_cache_bytes()
    if llc is None:
        pytest.skip("this machine does not report its caches (no Linux sysfs)")
    assert llc >= 1 << 20 and CacheFlush().bytes == min(2 * llc, 1 << 30)
    assert CacheFlush(llc_bytes=4 << 20).bytes == 8 << 20


def test_a_capped_flush_says_how_far(monkeypatch):
    monkeypatch.setenv("CONDBENCH_FLUSH_MBYTES", "16")
    assert CacheFlush(llc_bytes=64 << 20).bytes == 16 << 20 and CacheFlush(llc_bytes=4 << 20).bytes == 8 << 20


def test_the_suite_s_cache_key_reaches_every_case_and_row(tmp_path):
    suite = parse_suite("""name: s
kernels:
  - {name: a, batch: [4], shape: [{in_features: 64, out_features: 64}], block_size: [16], density: [0.5]}
  - {name: b, batch: [4], shape: [{in_features: 64, out_features: 64}], block_size: [16], density: [0.5], cache: warm}
""", "s.yaml")
    assert {c.sweep: c.cache for c in kernel_cases(suite)} == {"a": "cold", "b": "warm"}  # cold unless asked
    cold = run_kernel_case(case(), checkpoints=tmp_path, seed=0, rounds=2, bandwidth=1e12)
    warm = run_kernel_case(case(cache="warm"), checkpoints=tmp_path, seed=0, rounds=2, bandwidth=1e12)
    assert (cold.status, cold.cache, warm.status, warm.cache) == ("ok", "cold", "ok", "warm")


def test_cuda_times_cold_unless_it_replays_a_graph():
    assert cache_state("cuda", "cold", cuda_graph=False) == "cold"
    assert cache_state("cuda", "cold", cuda_graph=True) == "warm"  # a graph replays the calls back to back
    assert cache_state("cpu", "warm", cuda_graph=False) == "warm"


def test_the_roofline_of_a_warm_case_is_the_cache_s_bandwidth_of_a_cold_one_dram_s():
    peaks = {"copy_Bps": 30e9, "triad_Bps": 32e9, "cached_copy_Bps": 150e9, "cached_triad_Bps": 140e9}
    assert memory_roof(peaks, "cold") == 32e9 and memory_roof(peaks, "warm") == 150e9
    before = {"copy_Bps": 30e9, "triad_Bps": 32e9}  # an environment from before the cache was measured
    assert memory_roof(before, "warm") == 32e9


def test_a_row_faster_than_its_roofline_is_flagged(tmp_path):
    # A roof of 1 MB/s: every provider beats it, which only a wrong model of the case can explain.
    row = run_kernel_case(case(), checkpoints=tmp_path, seed=0, rounds=2, bandwidth=1e6, peers=("dense_onednn",))
    fractions = {m.provider: m.median for m in row.metrics if m.metric == "fraction_of_roofline"}
    assert min(fractions.values()) > ROOFLINE_TOLERANCE
    assert "above_roofline" in row.load_flags.split(",")
    assert set(row.above_roofline.split(",")) == {"dense", "ours", "dense_onednn"}
    others = [f for f in row.load_flags.split(",") if f not in ("above_roofline", "")]
    assert row.contended == any(f != "noisy" for f in others)  # a wrong model of the case is not contention
    honest = run_kernel_case(case(), checkpoints=tmp_path, seed=0, rounds=2, bandwidth=1e15, peak_flops=1e18)
    assert "above_roofline" not in honest.load_flags and honest.above_roofline == ""
