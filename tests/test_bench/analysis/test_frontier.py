"""The iso-accuracy answer on hand-made tables: which dense net a CondNet is compared with, and how."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bench.analysis.frontier import (
    dense_frontier,
    fastest_within_budget,
    figures_of_record,
    iso_accuracy,
    pair_speedup,
    paired_change,
)


def models_table(errors: dict[tuple[str, float, str], list[float]]) -> pd.DataFrame:
    """One row per family and seed: name '<policy>-<tau>-<hidden>-s<seed>'."""
    rows = []
    for (policy, tau, hidden), per_seed in errors.items():
        for seed, error in enumerate(per_seed):
            rows.append({"name": f"{policy}-{tau}-{hidden}-s{seed}", "seed": seed, "policy": policy, "tau": tau,
                         "hidden": hidden, "test_error": error})
    return pd.DataFrame(rows)


def times_table(times: dict[tuple[str, str, int], float], group: str | None = "g", rounds: int = 5) -> pd.DataFrame:
    """(seed-0 model name, provider, batch) -> median seconds; per-round samples a fixed pattern around it."""
    pattern = [0.98, 1.0, 1.02, 0.99, 1.01][:rounds]
    return pd.DataFrame([{"name": name, "seed": 0, "batch": batch, "provider": provider, "status": "ok", "error": "",
                          "timing_group": group, "median_s": t, "samples": [t * p for p in pattern]}
                         for (name, provider, batch), t in times.items()])


COND = ("reinforce", 0.25, "256x256")


def test_the_fastest_dense_net_as_accurate_is_picked_over_faster_less_accurate_ones():
    models = models_table({("dense", 1.0, "256x256"): [0.02, 0.03], ("dense", 1.0, "64x64"): [0.04, 0.05],
                           ("dense", 1.0, "32x32"): [0.09, 0.10], COND: [0.04, 0.06]})
    times = times_table({("dense-1.0-256x256-s0", "ours", 1): 1.0, ("dense-1.0-256x256-s0", "torch", 1): 0.8,
                         ("dense-1.0-64x64-s0", "ours", 1): 0.3, ("dense-1.0-64x64-s0", "onnxruntime", 1): 0.1,
                         ("dense-1.0-32x32-s0", "onnxruntime", 1): 0.05, ("reinforce-0.25-256x256-s0", "ours", 1): 0.4})
    (row,) = iso_accuracy(models, times).to_dict("records")
    # w = 64 errs 0.04 / 0.05 against the CondNet's 0.04 / 0.06: -0.5 points on average, so it qualifies;
    # w = 32 is faster but 5 points worse. Its fastest provider is ONNX Runtime.
    assert (row["dense_hidden"], row["dense_provider"]) == ("64x64", "onnxruntime")
    assert row["speedup"] == pytest.approx(0.1 / 0.4) and row["paired"]
    assert row["speedup_low"] <= row["speedup"] <= row["speedup_high"]
    assert row["error_change"] == pytest.approx(-0.005) and row["seeds"] == 2


def test_a_tie_qualifies():
    models = models_table({("dense", 1.0, "64x64"): [0.04], COND: [0.04]})
    times = times_table({("dense-1.0-64x64-s0", "ours", 1): 0.2, ("reinforce-0.25-256x256-s0", "ours", 1): 0.1})
    (row,) = iso_accuracy(models, times).to_dict("records")
    assert row["verdict"] == "compared" and row["dense_hidden"] == "64x64" and row["speedup"] == pytest.approx(2.0)


def test_no_dense_net_as_accurate_is_said_not_guessed():
    models = models_table({("dense", 1.0, "256x256"): [0.03, 0.03], COND: [0.02, 0.02]})
    times = times_table({("dense-1.0-256x256-s0", "ours", 1): 1.0, ("reinforce-0.25-256x256-s0", "ours", 1): 0.4})
    (row,) = iso_accuracy(models, times).to_dict("records")
    assert row["verdict"] == "no dense net is as accurate"
    assert math.isnan(row.get("speedup", math.nan))


def test_a_faster_dense_net_within_the_noise_is_named_beside_the_pick():
    """w = 64 is worse on average (+1 point) but its paired interval reaches 0: the data cannot tell it
    apart, so the report names it; the pick stays the rule's."""
    models = models_table({("dense", 1.0, "256x256"): [0.02, 0.02, 0.02], ("dense", 1.0, "64x64"): [0.03, 0.07, 0.02],
                           COND: [0.03, 0.03, 0.03]})
    times = times_table({("dense-1.0-256x256-s0", "ours", 1): 1.0, ("dense-1.0-64x64-s0", "ours", 1): 0.1,
                         ("reinforce-0.25-256x256-s0", "ours", 1): 0.4})
    (row,) = iso_accuracy(models, times).to_dict("records")
    assert row["dense_hidden"] == "256x256" and row["speedup"] == pytest.approx(2.5)
    assert row["within_noise_hidden"] == "64x64" and row["within_noise_speedup"] == pytest.approx(0.25)
    change = paired_change({0: 0.03, 1: 0.07, 2: 0.02}, {0: 0.03, 1: 0.03, 2: 0.03})
    assert change["low"] <= 0 < change["change"] < change["high"]


def test_pairing_is_per_seed_over_the_seeds_both_have():
    change = paired_change({0: 0.05, 1: 0.02, 2: 0.04}, {0: 0.04, 2: 0.05})
    assert change["seeds"] == 2 and change["change"] == pytest.approx(0.0)
    assert paired_change({0: 0.1}, {1: 0.1})["seeds"] == 0


def test_models_timed_in_other_rounds_get_an_unpaired_interval():
    a = {"median_s": 2.0, "samples": [2.0, 2.1, 1.9, 2.0], "timing_group": "a"}
    b = {"median_s": 1.0, "samples": [1.0, 1.1, 0.9, 1.0], "timing_group": "b"}
    s = pair_speedup(a, b)
    assert not s["paired"] and s["speedup"] == pytest.approx(2.0) and s["speedup_low"] < 2.0 < s["speedup_high"]
    s = pair_speedup({**a, "timing_group": "g"}, {**b, "timing_group": "g"})
    assert s["paired"] and s["speedup"] == pytest.approx(2.0)
    old = pair_speedup({"median_s": 2.0}, {"median_s": 1.0})  # rows before samples were kept
    assert old["speedup"] == 2.0 and math.isnan(old["speedup_low"])


def test_a_failed_provider_is_never_a_figure_of_record():
    times = times_table({("dense-1.0-64x64-s0", "ours", 1): 0.3, ("dense-1.0-64x64-s0", "onnxruntime", 1): 0.1})
    times.loc[times["provider"] == "onnxruntime", ["status", "median_s"]] = ["failed", math.nan]
    (record,) = figures_of_record(times).to_dict("records")
    assert record["provider"] == "ours"


def test_the_budget_table_takes_the_fastest_model_of_all_and_says_if_it_is_conditional():
    models = models_table({("dense", 1.0, "256x256"): [0.02, 0.02], ("dense", 1.0, "64x64"): [0.04, 0.04], COND: [0.025, 0.025]})
    times = times_table({("dense-1.0-256x256-s0", "ours", 256): 1.0, ("dense-1.0-64x64-s0", "torch", 256): 0.1,
                         ("reinforce-0.25-256x256-s0", "ours", 256): 0.2})
    fastest = fastest_within_budget(models, times)
    pick = {b: r for b, r in zip(fastest["budget"], fastest.to_dict("records"))}
    assert pick[0.0]["label"] == "dense" and not pick[0.0]["conditional"]
    assert pick[0.005]["policy"] == "reinforce" and pick[0.005]["conditional"]  # +0.5 points
    assert pick[math.inf]["label"] == "dense w = 64" and pick[math.inf]["provider"] == "torch"
    line = dense_frontier(models, times)
    assert list(line["width"]) == [64, 256] and list(line["test_error"]) == pytest.approx([0.04, 0.02])
