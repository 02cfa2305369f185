"""What a block-sparse linear case must do at the least, how close a measured time comes to it, and
every provider's metrics of a case: the one place these are computed (bench.measure.kernel calls it for
every case of every suite, bench_kernels' included)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.schema import Metric
from condcore.timing import iqr, median, ratio_samples, speedup_interval, time_interval


def useful_flops(batch: int, in_features: int, out_features: int, work_density: float) -> float:
    """Multiply-adds (x2) a perfect per-example kernel runs: the active (input, output) block pairs only."""
    return 2.0 * batch * in_features * out_features * work_density


def needed_bytes(batch: int, in_features: int, out_features: int, element_size: int, weight_share: float) -> float:
    """Bytes a perfect kernel must move: the needed share of W (1 for a large batch, whose rows need
    every block; the union's tile share for a small one), plus x and y once."""
    return (out_features * in_features * weight_share + batch * (in_features + out_features)) * element_size


def per_row_kernel(kernel: str) -> bool:
    """Whether the kernel that ran (condcore.ops.kernel_log) computes each row's active block pairs only,
    whatever the regime (the pair kernel), rather than whole tiles or rows of tiles."""
    return any(part.startswith("pairs") for part in kernel.split("+"))


def ideal_density(regime: str, kernel: str, work_density: float, tile_density: float) -> float:
    """The share of the dense work that bounds this case's speedup: the union regime's tile kernels run
    every tile some row needs (the tile density); the grouped regime and a per-row kernel in any regime
    run the active pairs only (the work density)."""
    return tile_density if regime == "union" and not per_row_kernel(kernel) else work_density


def weight_share(regime: str, kernel: str, tile_density: float) -> float:
    """The share of W a perfect kernel of this kind reads: the tiles some row needs where it skips the
    others (the union regime, a per-row kernel); all of it in the grouped regime."""
    return tile_density if regime == "union" or per_row_kernel(kernel) else 1.0


def roofline_seconds(flops: float, moved_bytes: float, flop_rate: float, bandwidth: float) -> float:
    """The least time this machine allows: the FLOPs at its GEMM rate or the bytes at its copy bandwidth."""
    return max(flops / flop_rate, moved_bytes / bandwidth)


@dataclass(frozen=True)
class CaseWork:
    """What a case asks of any provider: its shape, element size and the densities its masks realized."""

    batch: int
    in_features: int
    out_features: int
    element_size: int
    work_density: float
    ideal_density: float
    weight_share: float


def case_metrics(samples: dict[str, list[float]], work: CaseWork, device: str, bandwidth: float,
                 peak_flops: float | None = None, baseline: str = "dense") -> list[Metric]:
    """Every timed provider's metrics, long format: time, speedup over the baseline (per round, with
    its interval), useful TFLOP/s, needed GB/s, fraction of the ideal speedup and of this machine's
    roofline; plus the baseline's GEMM rate at this shape, and ours' speedup over plain `dense`
    (plain_speedup: the same as its speedup where that is the baseline). The roofline's compute roof is the higher of
    the measured peak GEMM rate and that shape's (the machine reached both); without a peak, the shape's."""
    w = work
    flops = useful_flops(w.batch, w.in_features, w.out_features, w.work_density)
    moved = needed_bytes(w.batch, w.in_features, w.out_features, w.element_size, w.weight_share)
    base = samples[baseline]
    gemm_rate = useful_flops(w.batch, w.in_features, w.out_features, 1.0) / median(base)
    least_s = roofline_seconds(flops, moved, max(gemm_rate, peak_flops or 0.0), bandwidth)
    metrics = [Metric.of(baseline, "gemm_rate", gemm_rate / 1e12)]
    for provider, times in samples.items():
        t, ratios = median(times), ratio_samples(base, times)
        speedup = median(ratios)
        metrics += [
            Metric.of(provider, "time", t, iqr(times), *time_interval(times, device)),
            Metric.of(provider, "speedup", speedup, iqr(ratios), *speedup_interval(base, times, device)),
            Metric.of(provider, "throughput", flops / t / 1e12),
            Metric.of(provider, "bandwidth", moved / t / 1e9),
            Metric.of(provider, "fraction_of_ideal", speedup * w.ideal_density),
            Metric.of(provider, "fraction_of_roofline", least_s / t),
        ]
    if "ours" in samples and "dense" in samples:
        plain, ours = samples["dense"], samples["ours"]
        metrics.append(Metric.of("ours", "plain_speedup", median(ratio_samples(plain, ours)),
                                 iqr(ratio_samples(plain, ours)), *speedup_interval(plain, ours, device)))
    return metrics

