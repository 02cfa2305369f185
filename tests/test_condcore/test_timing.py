"""The statistics behind every reported speedup."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.alone  # timings or the machine's load: never beside other tests (pyproject)


def test_bootstrap_interval_holds_the_median_and_tightens_with_agreement():
    import random
    import statistics

    from condcore.timing import bootstrap_interval, speedup_interval

    rng = random.Random(0)
    spread = [2.0 + rng.gauss(0, 0.3) for _ in range(15)]
    tight = [2.0 + rng.gauss(0, 0.03) for _ in range(15)]
    lo, hi = bootstrap_interval(spread)
    assert lo <= statistics.median(spread) <= hi
    tlo, thi = bootstrap_interval(tight)
    assert thi - tlo < (hi - lo) / 3
    assert bootstrap_interval(spread) == (lo, hi)  # seeded: a report reproduces from its rows
    assert bootstrap_interval([1.5] * 5) == (1.5, 1.5)
    # CUDA keeps the 20/50/80% quantiles only: the cross ratios bound the speedup
    assert speedup_interval([1.0, 1.1, 1.2], [0.4, 0.5, 0.6], "cuda") == (1.0 / 0.6, 1.2 / 0.4)


def test_a_device_sample_waits_for_the_device_before_its_clock_starts_and_stops():
    from condcore.timing import time_cpu_interleaved

    events = []
    samples = time_cpu_interleaved({"a": lambda: events.append("call"), "b": lambda: events.append("call")}, rounds=3,
                                   warmup=1, sync=lambda: events.append("sync"))
    assert [len(v) for v in samples.values()] == [3, 3]
    # a sync before each clock start and before each stop: the warm-ups' (one per function) and the samples'
    assert events[0] == "sync" and events[-1] == "sync" and events.count("sync") == 2 * (2 + 2 * 3)


def test_a_cold_sample_cannot_wait_for_a_device():
    from condcore.timing import time_cpu_interleaved

    with pytest.raises(ValueError, match="flush and sync"):
        time_cpu_interleaved({"a": lambda: None}, rounds=1, flush=lambda: None, sync=lambda: None)
