"""The break-even analysis: the density where the sparse layer's speedup crosses 1, or its bound."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.analysis.break_even import break_even, describe


def rows(points: dict[float, float], batch: int = 16, source: str = "iid", status: str = "ok") -> list[dict]:
    return [dict(device="cpu", dtype="float32", in_features=2048, out_features=2048, block_size=128, batch=batch,
                 masks="both", mask_source=source, requested_density=d, speedup=s, status=status)
            for d, s in points.items()]


def test_the_crossing_is_interpolated_in_log_log():
    # speedup = 0.5 / d: crosses 1 at d = 0.5, between the measured 0.25 (2x) and 1.0 (0.5x).
    be = break_even(pd.DataFrame(rows({0.1: 5.0, 0.25: 2.0, 1.0: 0.5})))
    (r,) = be.to_dict("records")
    assert r["bound"] == "=" and r["monotone"]
    assert r["density"] == pytest.approx(0.5)
    assert r["best_speedup"] == 5.0 and r["best_density"] == 0.1
    assert describe(r) == "0.5"


def test_wins_everywhere_and_nowhere_are_bounds_not_points():
    be = break_even(pd.DataFrame(rows({0.1: 9.0, 0.5: 1.8}, batch=1) + rows({0.1: 0.9, 0.5: 0.4}, batch=4)))
    by_batch = {r["batch"]: r for r in be.to_dict("records")}
    assert (by_batch[1]["bound"], by_batch[1]["density"]) == (">", 0.5)
    assert (by_batch[4]["bound"], by_batch[4]["density"]) == ("<", 0.1)
    assert describe(by_batch[1]) == "> 0.5"
    assert describe(by_batch[4]) == "< 0.1"


def test_a_win_above_a_loss_is_flagged_and_the_crossing_above_the_densest_win_is_used():
    be = break_even(pd.DataFrame(rows({0.1: 0.9, 0.25: 1.5, 0.5: 0.8})))
    (r,) = be.to_dict("records")
    assert not r["monotone"] and r["bound"] == "="
    assert 0.25 < r["density"] < 0.5
    assert describe(r).endswith(" *")


def test_failed_rows_trained_masks_and_single_densities_are_left_out():
    data = (rows({0.1: 5.0, 0.5: 0.5}, status="check failed") + rows({0.1: 5.0}, batch=8)
            + [dict(r, requested_density=math.nan) for r in rows({0.1: 5.0, 0.5: 0.5}, source="trained")])
    assert break_even(pd.DataFrame(data)).empty
    assert break_even(pd.DataFrame()).empty


def test_configurations_are_kept_apart():
    data = rows({0.1: 5.0, 1.0: 0.5}) + [dict(r, block_size=64) for r in rows({0.1: 0.5, 1.0: 0.2})]
    be = break_even(pd.DataFrame(data))
    assert sorted(be["bound"]) == ["<", "="]
