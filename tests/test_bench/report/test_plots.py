"""The report's plots: the Pareto front is the models nothing beats, and each plot carries what a reader
needs without the text (reference lines, a legend outside the data, log axes)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
from support.paths import REPO

from bench.report.plots import pareto_front, plot_pareto, plot_speedup_vs_batch, plot_speedup_vs_density  # noqa: E402
from bench.store.results import load_run  # noqa: E402

RUN = REPO / "results/runs/cpu-20261202-083023"


def test_the_pareto_front_keeps_only_undominated_models():
    points = pd.DataFrame({"speedup": [1.0, 3.0, 2.0, 5.0, 4.0, 5.0],
                           "test_error": [0.02, 0.03, 0.04, 0.08, 0.02, 0.09]})
    front = pareto_front(points)
    # (2, .04) loses to (4, .02) on both; (3, .03) and (1, .02) lose to (4, .02); (5, .09) to (5, .08).
    assert list(zip(front["speedup"], front["test_error"])) == [(4.0, 0.02), (5.0, 0.08)]


def test_the_pareto_front_of_times_keeps_the_faster_undominated_models():
    points = pd.DataFrame({"median_s": [1.0, 0.3, 0.5, 0.2, 0.25], "test_error": [0.02, 0.03, 0.04, 0.08, 0.02]})
    front = pareto_front(points, "median_s", faster="lower")
    # (0.3, .03), (0.5, .04) and (1.0, .02) lose to (0.25, .02); (0.2, .08) is the fastest.
    assert list(zip(front["median_s"], front["test_error"])) == [(0.25, 0.02), (0.2, 0.08)]


def test_the_pareto_plot_has_its_front_the_dense_frontier_and_log_axes():
    run = load_run(RUN)
    fig = plot_pareto(run.models, run.model_times)
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert "Pareto front of all models" in labels and "dense frontier (one net per width)" in labels
    assert {"random", "reinforce", "straight-through", "topk"} <= set(labels)
    for ax in fig.axes:
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert ax.get_legend() is None  # the legend sits outside the panels


def test_the_kernel_plots_split_by_mask_side_and_draw_the_trained_masks():
    kernels = load_run(RUN).kernels
    density = plot_speedup_vs_density(kernels)
    assert [ax.get_title() for ax in density.axes] == ["input and output masks", "output masks"]
    labels = [t.get_text() for legend in density.legends for t in legend.get_texts()]
    assert "trained models' masks (B, tau)" in labels and "ideal: 1 / density" in labels
    batch = plot_speedup_vs_batch(kernels)
    by_density: dict[str, set] = {}
    for ax in batch.axes:
        for series in ax.containers:  # one errorbar container per series
            colour = series.lines[0].get_color()
            by_density.setdefault(series.get_label().split(",")[0], set()).add(
                colour if isinstance(colour, str) else tuple(colour))
    # One colour per density asked, all different: not a 10-colour cycle wrapping round.
    assert len(by_density) >= 3 and all(len(c) == 1 for c in by_density.values())
    assert len(set().union(*by_density.values())) == len(by_density)
