"""The terminal report reads at 80 and at 160 columns: nothing cut, the answer first."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import pytest
from rich.console import Console
from support.paths import REPO

from bench.analysis.frontier import ERROR_BUDGETS, fastest_within_budget, figures_of_record
from bench.analysis.summary import budget_label
from bench.report.data import report_data
from bench.report.tables import KEEP, Column, fitted_table
from bench.report.terminal import print_report
from bench.store.results import load_run

RESULTS = REPO / "results/runs"
RUN = RESULTS / "cpu-20261202-083023"  # the default suite from a fresh clone, committed
# Committed runs of other shapes: the README's (five densities), a profiled one, a CI one, one from
# before intervals were kept.
OTHER_RUNS = ["cpu-20261202-090239", "cpu-20261202-065824", "ci-20261202-023655", "cpu-20261125-041655"]


def render(width: int, run: Path = RUN) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    print_report(report_data(load_run(run)), console)
    return console.export_text()


@pytest.mark.parametrize("run", OTHER_RUNS)
@pytest.mark.parametrize("width", [80, 160])
def test_every_committed_run_shape_fits_too(run, width):
    text = render(width, RESULTS / run)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width


@pytest.mark.parametrize("width", [80, 160])
def test_the_default_suites_report_fits_without_cutting_a_cell(width):
    text = render(width)
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    # The answer first, the models' question first of all: both summaries before the first sweep table.
    glance = text.index("the best block size per batch and density")
    models = text.index("is it worth it?")
    assert models < glance < text.index("sweep decode")
    # Every model and every kernel case is there, with its speedup.
    for policy in ("dense", "random", "reinforce", "straight-through", "topk"):
        assert f"\n {policy} " in text
    for batch in ("4", "16", "256", "1024"):
        assert f" {batch} " in text


def test_intervals_show_at_160_and_their_absence_is_said_at_80():
    wide, narrow = render(160), render(80)
    assert "7.03 [6.95, 7.18]" in wide  # large batch, k = 128, d = 0.1: the speedup and its interval
    assert "7.03 [6.95, 7.18]" not in narrow and " 7.03" in narrow
    assert "intervals not shown at this width" in narrow


def test_the_error_budget_summary_picks_the_fastest_model_within_each_budget():
    """On a run from before the dense frontier (condbench's forward only): the pick per budget is the
    model of least time per batch among those within it, dense twin included."""
    run = load_run(RUN)
    fastest = fastest_within_budget(run.models, run.model_times)
    assert [budget_label(b) for b in dict.fromkeys(fastest["budget"])] == [budget_label(b) for b in ERROR_BUDGETS]
    assert (fastest["error_change"] <= fastest["budget"] + 1e-12).all()
    records = figures_of_record(run.model_times)
    top = fastest[(fastest["budget"] == float("inf")) & (fastest["batch"] == 256)].iloc[0]
    assert top["median_s"] == records[records["batch"] == 256]["median_s"].min()
    assert top["conditional"] and top["provider"] == "ours"


def test_fitted_table_moves_constants_to_the_title_shortens_then_drops():
    columns = [Column("device", 10), Column("B", KEEP), Column("speedup", KEEP), Column("extra", 5)]
    rows = [["cpu", "1", ("2.00 [1.90, 2.10]", "2.00"), "x" * 30], ["cpu", "16", ("3.00 [2.90, 3.10]", "3.00"), "y" * 30]]
    wide = fitted_table("t", columns, rows, 200)
    assert wide.title == "t: cpu" and [c.header for c in wide.columns] == ["B", "speedup", "extra"]
    narrow = fitted_table("t", columns, rows, 40, files="kernels.csv")
    assert [c.header for c in narrow.columns] == ["B", "speedup"]
    assert "intervals not shown at this width: speedup" in narrow.caption
    assert "columns not shown at this width: extra" in narrow.caption and "kernels.csv" in narrow.caption
    tiny = fitted_table("t", columns, rows, 5)
    assert [c.header for c in tiny.columns] == ["B", "speedup"]  # KEEP columns stay, however narrow


@pytest.mark.parametrize("width", [80, 160])
def test_the_progress_line_keeps_its_bar_count_and_eta(width):
    from bench.runner import progress_bar

    progress = progress_bar(Console(width=width, file=io.StringIO()))
    task = progress.add_task("kernel trained-masks/cpu/float32/auto/auto/B256/2048x2048/k128/d0.5/both/trained:"
                             "digits-reinforce-tau0.5-h2048x2048-k128-e20-b128-lr0.002-auto-s0", total=10)
    progress.advance(task, 3)
    out = Console(width=width, record=True, file=io.StringIO())
    out.print(progress.get_renderable())
    line = out.export_text().splitlines()[0]
    assert len(line) <= width and "━" in line and "3/10" in line and line.rstrip().endswith("-:--:--")
    assert line.startswith("kernel trained-masks/")


def test_a_flagged_row_is_marked_in_every_summary_of_it():
    """Found by the kernel-honesty issue: the first table showed "0.50 [0.50, 3.11]" unmarked from a row
    flagged oversubscribed,noisy. Each summary (terminal, HTML, markdown) marks such a cell and says why;
    where a clean block size ran the cell too, it shows that one, marked as chosen over a faster flagged one."""
    from bench.analysis.summary import best_configurations
    from bench.report.html import summary_html
    from bench.report.markdown import markdown_summary
    from bench.report.terminal import print_summary
    from bench.store.results import load_run

    root = REPO
    source = "results/runs/cpu-20261203-171044"
    run = load_run(root / source)
    cell = ["batch", "masks", "mask_source", "requested_density"]
    ok = run.kernels[run.kernels["status"] == "ok"]

    def rivals_of(row):  # the rows of its summary cell: the other block sizes of its batch and density
        return ok[(ok[cell] == row[cell]).all(axis=1)]

    # a summary cell that more than one block size ran, so that a flagged winner has a clean rival
    winner = next(run.kernels.loc[i] for i in best_configurations(run.kernels).index
                  if len(rivals_of(run.kernels.loc[i])) > 1)
    rivals = rivals_of(winner)
    quiet = [r.model_copy(update={"load_flags": ""}) for r in run.kernel_rows]
    flagged_note, passed_note = "timed on a busy machine, noisy", "the fastest clean one is shown"
    # the winner flagged alone: its summary cell shows the clean rival (?); the README's break-even, which
    # rests on the flagged row too, marks it (!)
    for flagged_ids, expect in (((), (False, False)), ((winner["case_id"],), (None, True)),
                                (tuple(rivals["case_id"]), (True, False))):
        rows = [r.model_copy(update={"load_flags": "oversubscribed,noisy"}) if r.case_id in flagged_ids else r for r in quiet]
        case = dataclasses.replace(run, kernel_rows=rows)
        if expect[1]:  # the winner flagged alone: the cell is the fastest clean rival, not the winner
            chosen = best_configurations(case.kernels).loc[lambda b: (b[cell] == winner[cell]).all(axis=1)]
            assert chosen["block_size"].iloc[0] != winner["block_size"] and chosen["passed_over"].iloc[0]
        data = report_data(case)
        markdown = markdown_summary(data, source)
        console = Console(file=io.StringIO(), width=200)
        print_summary(data, console)
        page = "".join(summary_html(data))
        for text in (markdown, " ".join(console.file.getvalue().split()), page):  # rich wraps captions
            flagged, passed = flagged_note in text and " !" in text, passed_note in text and " ?" in text
            assert passed is expect[1] and flagged is (flagged if expect[0] is None else expect[0]), text[:3000]
        if expect[0] is None:
            assert flagged_note in markdown.split("**Break-even density**")[1]
