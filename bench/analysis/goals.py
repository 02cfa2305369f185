"""The kernels' speed goals (the kernels issue's, the CPU ones raised by the faster-models issue, #15),
checked on a run's own rows: met, or missed by how much."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.core.flags import is_flagged


@dataclass(frozen=True)
class Goal:
    label: str
    device: str
    dtype: str
    batch: int
    in_features: int
    out_features: int
    block_size: int
    masks: str
    density: float
    metric: str  # a column of the kernels table
    target: float


GOALS = [
    *[Goal(f"CPU fp32 large batch, k={k}, d={d}", "cpu", "float32", 1024, 2048, 2048, k, "out", d, "fraction_of_ideal", t)
      for k, targets in ((128, (0.95, 0.95, 0.85)), (64, (0.9, 0.9, 0.8))) for d, t in zip((0.5, 0.25, 0.1), targets)],
    *[Goal(f"H100 bf16 large batch, d={d}", "cuda", "bfloat16", 8192, 4096, 4096, 128, "out", d, "fraction_of_ideal", t)
      for d, t in ((0.25, 0.75), (0.1, 0.6))],
    *[Goal(f"H100 bf16 decode B=16, d={d}", "cuda", "bfloat16", 16, 4096, 14336, 128, "both", d, "fraction_of_roofline", 0.7)
      for d in (0.5, 0.25, 0.1)],
]


def check_goals(kernels: pd.DataFrame) -> pd.DataFrame:
    """One row per goal that the run measured (iid masks): measured value, target, the shortfall, and
    whether a row it was measured on is flagged (bench.core.flags)."""
    if kernels.empty:
        return pd.DataFrame()
    ok = kernels[(kernels["status"] == "ok") & (kernels["mask_source"] == "iid")]
    rows = []
    for g in GOALS:
        hit = ok[(ok["device"] == g.device) & (ok["dtype"] == g.dtype) & (ok["batch"] == g.batch)
                 & (ok["in_features"] == g.in_features) & (ok["out_features"] == g.out_features)
                 & (ok["block_size"] == g.block_size) & (ok["masks"] == g.masks) & (ok["requested_density"] == g.density)]
        if hit.empty:
            continue
        value = float(hit[g.metric].median())
        rows.append({"goal": g.label, "metric": g.metric, "target": g.target, "measured": value,
                     "met": value >= g.target, "short_by": max(0.0, g.target - value),
                     "flagged": any(is_flagged(r) for r in hit.to_dict("records"))})
    return pd.DataFrame(rows)
