"""Flags travel with the numbers: a figure from a flagged row (busy, noisy, above the roofline) is marked
in every table and plot derived from it, and a summary that prefers a clean row says so."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
from support.paths import REPO

from bench.analysis.break_even import break_even, describe  # noqa: E402
from bench.analysis.goals import check_goals  # noqa: E402
from bench.analysis.summary import best_configurations  # noqa: E402
from bench.core.flags import FLAGGED, PASSED_OVER, flag_mark, flag_notes  # noqa: E402
from bench.report.plots import FLAGGED_LABEL, plot_speedup_vs_batch, plot_speedup_vs_density  # noqa: E402
from bench.store.results import load_run  # noqa: E402

RUN = REPO / "results" / "runs" / "cpu-20261203-171044"


def row(block_size: int, speedup: float, flags: str = "", density: float = 0.25, batch: int = 1024) -> dict:
    return dict(case_id=f"k{block_size}-d{density}-B{batch}", status="ok", device="cpu", dtype="float32",
                in_features=2048, out_features=2048, block_size=block_size, batch=batch, masks="out",
                mask_source="iid", requested_density=density, ideal_density=density, speedup=speedup,
                speedup_ci_low=speedup * 0.9, speedup_ci_high=speedup * 1.1, fraction_of_ideal=speedup * density,
                load_flags=flags)


def test_the_summary_prefers_a_clean_row_and_says_a_faster_one_was_flagged():
    kernels = pd.DataFrame([row(128, 3.0, "busy"), row(64, 2.5), row(32, 2.0)])
    (best,) = best_configurations(kernels).to_dict("records")
    assert (best["block_size"], best["passed_over"]) == (64, True)
    assert flag_mark(best) == PASSED_OVER and len(flag_notes([best])) == 1


def test_a_cell_every_row_of_which_is_flagged_shows_the_fastest_marked():
    kernels = pd.DataFrame([row(128, 3.0, "busy"), row(64, 2.5, "above_roofline")])
    (best,) = best_configurations(kernels).to_dict("records")
    assert (best["block_size"], best["passed_over"]) == (128, False) and flag_mark(best) == FLAGGED


def test_the_passed_over_mark_only_where_a_flagged_row_was_faster():
    kernels = pd.DataFrame([row(128, 3.0), row(64, 3.5, "noisy")])
    (best,) = best_configurations(kernels).to_dict("records")
    assert best["block_size"] == 128 and best["passed_over"] and flag_mark(best) == PASSED_OVER
    (alone,) = best_configurations(pd.DataFrame([row(128, 3.0), row(64, 2.0, "noisy")])).to_dict("records")
    assert alone["block_size"] == 128 and flag_mark(alone) == "" and flag_notes([alone]) == []


def test_a_break_even_resting_on_a_flagged_row_is_marked():
    points = [row(128, 3.0, density=0.1), row(128, 0.8, "steal", density=0.5)]
    (flagged,) = break_even(pd.DataFrame(points)).to_dict("records")
    assert flagged["flagged"] and describe(flagged).endswith(FLAGGED)
    (clean,) = break_even(pd.DataFrame([{**p, "load_flags": ""} for p in points])).to_dict("records")
    assert not clean["flagged"] and not describe(clean).endswith(FLAGGED)


def test_a_goal_measured_on_a_flagged_row_says_so():
    goals = check_goals(pd.DataFrame([row(128, 3.8, "oversubscribed"), row(64, 3.7)]))
    by = {g["goal"]: g["flagged"] for g in goals.to_dict("records")}
    assert by == {"CPU fp32 large batch, k=128, d=0.25": True, "CPU fp32 large batch, k=64, d=0.25": False}


def test_the_kernel_plots_ring_the_flagged_points():
    kernels = load_run(RUN).kernels
    flagged = kernels["load_flags"].map(lambda f: isinstance(f, str) and bool(f))
    assert flagged.any()  # the committed run has flagged rows (noisy ones)
    for plot in (plot_speedup_vs_density, plot_speedup_vs_batch):
        fig = plot(kernels)
        labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
        assert FLAGGED_LABEL in labels
        rings = sum(len(c.get_offsets()) for ax in fig.axes for c in ax.collections if c.get_label() == FLAGGED_LABEL)
        expected = kernels[flagged & (kernels["status"] == "ok")]
        if plot is plot_speedup_vs_batch:
            expected = expected[expected["mask_source"] != "trained"]
        assert rings == len(expected)
        clean = plot(kernels.assign(load_flags=""))
        assert FLAGGED_LABEL not in [t.get_text() for legend in clean.legends for t in legend.get_texts()]
