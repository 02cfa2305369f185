"""What a block-sparse linear case must do at the least, and how close a measured time comes to it:
the one place these are computed (the suite runner and bench_kernels both use them)."""

from __future__ import annotations


def useful_flops(batch: int, in_features: int, out_features: int, work_density: float) -> float:
    """Multiply-adds (x2) a perfect per-example kernel runs: the active (input, output) block pairs only."""
    return 2.0 * batch * in_features * out_features * work_density


def needed_bytes(batch: int, in_features: int, out_features: int, element_size: int, weight_share: float) -> float:
    """Bytes a perfect kernel must move: the needed share of W (1 for a large batch, whose rows need
    every block; the union's tile share for a small one), plus x and y once."""
    return (out_features * in_features * weight_share + batch * (in_features + out_features)) * element_size


def weight_share(regime: str, tile_density: float) -> float:
    return tile_density if regime == "union" else 1.0


def roofline_seconds(flops: float, moved_bytes: float, flop_rate: float, bandwidth: float) -> float:
    """The least time this machine allows: the FLOPs at its GEMM rate or the bytes at its copy bandwidth."""
    return max(flops / flop_rate, moved_bytes / bandwidth)
