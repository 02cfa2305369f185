"""Where conditional computation stops paying: per configuration, the block density at which the sparse
layer's speedup over its best dense path crosses 1.

A configuration is a device, dtype, layer shape, block size, batch and masked side, with synthetic masks
(iid or clustered; trained masks have no density to set). Its break-even is interpolated between the
two measured densities that bracket the crossing, linearly in log(density) against log(speedup), which
is how speedup falls with density (about 1 / density while the kernel keeps its efficiency). Where the
sparse layer wins at every density measured, the break-even lies above the largest measured; where it
wins at none, below the smallest. Densities are the ones the suite asked for (each masked side's
fraction of active blocks): the knob a user sets.
"""

from __future__ import annotations

import math

import pandas as pd

from bench.core.flags import FLAGGED, is_flagged

CONFIGURATION = ["device", "dtype", "in_features", "out_features", "block_size", "batch", "masks", "mask_source"]


def break_even(kernels: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration measured at two densities or more: `configuration` columns, then
    `bound` ("=" interpolated, ">" above the largest measured, "<" below the smallest), `density` (the
    break-even, or the bound's measured density), `measured` (the densities, ascending), `monotone`
    (False where a win lies above a loss: the interpolation then uses the crossing above the densest
    win), the best speedup with its density, and `flagged` where a row it rests on is (bench.core.flags)."""
    if kernels.empty:
        return pd.DataFrame()
    ok = kernels[(kernels["status"] == "ok") & (kernels["mask_source"] != "trained")
                 & kernels["requested_density"].notna()]
    rows = []
    for key, group in ok.groupby(CONFIGURATION, sort=False):
        points = group.groupby("requested_density")["speedup"].median().sort_index()
        if len(points) < 2:
            continue
        densities, speedups = list(points.index), list(points.values)
        wins = [s > 1.0 for s in speedups]
        best = max(range(len(speedups)), key=lambda i: speedups[i])
        row = dict(zip(CONFIGURATION, key), measured=densities, best_speedup=speedups[best],
                   best_density=densities[best], monotone=wins == sorted(wins, reverse=True),
                   flagged=any(is_flagged(r) for r in group.to_dict("records")))
        if all(wins):
            row.update(bound=">", density=densities[-1])
        elif not any(wins):
            row.update(bound="<", density=densities[0])
        else:
            last_win = max(i for i, w in enumerate(wins) if w)
            if last_win == len(wins) - 1:  # the densest point wins, a sparser one loses: not monotone
                row.update(bound=">", density=densities[-1])
            else:
                row.update(bound="=", density=_crossing(densities[last_win], speedups[last_win],
                                                        densities[last_win + 1], speedups[last_win + 1]))
        rows.append(row)
    return pd.DataFrame(rows)


def _crossing(d0: float, s0: float, d1: float, s1: float) -> float:
    """The density between d0 (speedup s0 > 1) and d1 (s1 <= 1) where the log-log line through the two
    points reaches speedup 1."""
    t = math.log(s0) / (math.log(s0) - math.log(s1))
    return math.exp(math.log(d0) + t * (math.log(d1) - math.log(d0)))


def describe(row: dict) -> str:
    """'0.31', '> 0.5' (won at every density measured, up to 0.5), '< 0.1' (won at none, down to 0.1); a
    trailing '*' where the speedups were not monotone in density, then FLAGGED where a row was flagged."""
    mark = ("" if row["monotone"] else " *") + (FLAGGED if row.get("flagged") is True else "")
    if row["bound"] == "=":
        return f"{row['density']:.2g}{mark}"
    return f"{row['bound']} {row['density']:g}{mark}"
