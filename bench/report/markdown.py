"""The README's results section of a run, in markdown (`python -m bench summary RUN --markdown`): a
rendering of its ReportData, every cell escaped (a run folder is data from anywhere)."""

from __future__ import annotations

import pandas as pd

from bench.analysis.break_even import describe
from bench.analysis.frontier import label
from bench.analysis.models_summary import inference_where
from bench.analysis.rows import baseline_phrase, machine_line
from bench.analysis.summary import best_grid, budget_label, grid_notes, iso_text, ms_text, speedup_text
from bench.core.flags import FLAGGED, FLAGGED_NOTE, flag_mark
from bench.report.data import DatasetPart, ReportData


def markdown_summary(data: ReportData, source: str) -> str:
    """The README's results section for a run (found at `source`, a path relative to the repository):
    the two answer tables, the models, the goals and the break-even densities, every number from the
    run's own files."""
    run = data.run
    env = run.env
    lines = [_md_text(f"From `{source}/` (`python -m bench summary {source} --markdown` writes this section): "
                      f"{machine_line(env)}; medians of "
                      f"interleaved rounds, [95% intervals]; x = speedup over {baseline_phrase(run.kernels)}."), ""]
    for part in data.parts:  # the question first: is it worth it against the dense frontier
        lines += models_markdown(part)
    best = data.best
    if not best.empty:
        densities, grid = best_grid(best)
        def cell(r: dict | None) -> str:
            if r is None:
                return ""
            return (f"{speedup_text(r['speedup'], r['speedup_ci_low'], r['speedup_ci_high'])} (k {r['block_size']})"
                    f"{flag_mark(r)}")

        rows = [[batch, masks, src, *map(cell, cells)] for (batch, masks, src), cells in grid]
        lines += [f"**The best block size per batch and density** ({_md_text(_layers_timed(best))}):", "",
                  *markdown_table(["B", "masks", "source", *(f"d = {d:g}" for d in densities)],
                                  "rll" + "r" * len(densities), rows), "",
                  *[line for note in grid_notes(grid) for line in (_md_text(note), "")]]
    goals = data.goals
    if not goals.empty:
        lines += ["**Speed goals** (`bench/goals.py`; fraction of the ideal speedup 1 / density):", "",
                  *markdown_table(["goal", "target", "measured", "verdict"], "lrrl",
                                  [[r["goal"], f"{r['target']:.2f}", f"{r['measured']:.2f}{FLAGGED if r['flagged'] else ''}",
                                    "met" if r["met"] else f"missed by {r['short_by']:.2f}"]
                                   for r in goals.to_dict("records")]),
                  "", *([_md_text(FLAGGED_NOTE), ""] if goals["flagged"].any() else [])]
    be = data.break_even
    if not be.empty:
        lines += ["**Break-even density** (where sparse stops beating dense; &gt; d: it won at every density "
                  "measured, up to d):", "",
                  *markdown_table(["B", "k", "masks", "source", "break-even"], "rrlll",
                                  [[r["batch"], r["block_size"], r["masks"], r["mask_source"], describe(r)]
                                   for r in be.sort_values(["batch", "block_size"]).to_dict("records")]), "",
                  *([_md_text(FLAGGED_NOTE), ""] if be["flagged"].any() else [])]
    return "\n".join(lines)


def models_markdown(part: DatasetPart) -> list[str]:
    """The models' part of the README's section: is it worth it (the fastest model of all per budget,
    the goal), then each CondNet against the fastest dense net as accurate."""
    fastest, iso, twin, ref = part.fastest, part.iso, part.twin, part.reference
    lines = []
    dataset = part.run.models["dataset"].iloc[0] if not part.run.models.empty else ""
    if not fastest.empty:
        where = inference_where(part.run.models)
        lines += [_md_text(f"**Is it worth it? The fastest model of all within each test-error budget** ({dataset}; "
                           + (f"{where}; " if where else "") +
                           "CondNets and dense nets of every width, each under its fastest correct provider; budget: "
                           f"the test error's rise over the {ref} dense net's, paired per seed):"), "",
                  *markdown_table(["test error vs dense", "B", "fastest model", "runs as", "ms per batch",
                                   "conditional", "its error vs dense"], "lrllrlr",
                                  [[budget_label(r["budget"]), r["batch"], r["label"], r["provider"],
                                    ms_text(r["median_s"]), "yes" if r["conditional"] else "no",
                                    f"{100 * r['error_change']:+.2f} points"] for r in fastest.to_dict("records")]), ""]
    if not iso.empty:
        lines += ["**Each CondNet against the fastest dense net as accurate** (as accurate: its test error, "
                  "paired per seed, on average not worse; x: the CondNet's speedup over it, per-round ratio "
                  "of the same interleaved rounds [95% interval]; twin x: over the dense net of the "
                  "CondNet's own shape, condbench's forward, as earlier reports gave it):", ""]
        rows = []
        for r in iso.sort_values(["batch", "policy", "tau"], ascending=[True, True, False]).to_dict("records"):
            dense = ("–" if r["verdict"] != "compared" else
                     f"{label('dense', 1.0, r['dense_hidden'], ref)}, {r['dense_provider']}: "
                     f"{ms_text(r['dense_median_s'])} ms")
            t = twin.get((r["policy"], r["tau"], r["hidden"], r["batch"]))
            twin_x = "" if t is None else speedup_text(t["speedup"], t["speedup_ci_low"], t["speedup_ci_high"])
            rows.append([label(r["policy"], r["tau"], r["hidden"]), r["batch"], ms_text(r["median_s"]), dense,
                         iso_text(r), twin_x])
        lines += [*markdown_table(["CondNet", "B", "ms per batch", "fastest dense as accurate", "x over it", "twin x"],
                                  "lrrlrr", rows),
                  "", "**The goal** (a CondNet faster than every dense width under every provider at equal "
                  "accuracy): " + _md_text("; ".join(part.goal)) + ".", ""]
    return lines


def _layers_timed(best: pd.DataFrame) -> str:
    """What the best-configuration table's cases ran: their layer shapes, dtypes and devices, as the run
    has them (older rows without these columns say less)."""
    parts = []
    if {"in_features", "out_features"} <= set(best.columns):
        shapes = list(dict.fromkeys(f"{a} x {b}" for a, b in zip(best["in_features"], best["out_features"])))
        parts.append(("one layer, " if len(shapes) == 1 else "layers ") + ", ".join(shapes))
    for column in ("dtype", "device"):
        if column in best.columns:
            parts.append(", ".join(dict.fromkeys(map(str, best[column]))))
    return "; ".join(parts) or "one layer"


def _md_text(text: object) -> str:
    """Text from a run, safe in markdown: a run folder is data from anywhere, and markdown passes HTML
    through, so what would be a tag or break a table is an entity."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\n", " ").replace("\r", " "))


def markdown_table(head: list[str], align: str, rows: list[list]) -> list[str]:
    """A markdown table, every cell escaped; `align` one letter per column, l or r."""
    rule = "|" + "".join("---:|" if a == "r" else "---|" for a in align)
    return ["| " + " | ".join(map(_md_text, head)) + " |", rule,
            *("| " + " | ".join(map(_md_text, row)) + " |" for row in rows)]
