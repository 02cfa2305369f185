"""A run's report as one self-contained HTML page that leads with the answer.

Order: what the page answers, the two summary tables (best block size per batch and density; fastest
model per error budget), the speed-against-accuracy plot, the break-even densities and the goals; then
the details: each sweep's cases, the plots, the peers, the profiles, the models, the machine. Tables
show the columns a reader needs, in the terminal's units (ms, %, x); every column of every table is one
click away (a <details> block that scrolls sideways inside itself), so the page never does.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd
from markupsafe import Markup, escape

from bench.analysis.break_even import describe
from bench.analysis.frontier import label
from bench.analysis.models_summary import inference_where
from bench.analysis.rows import (asked_density, baseline_cell, baseline_note, cache_cell, cache_note, fastest_peer,
                                 in_reading_order, kernel_cells, kernel_legend)
from bench.analysis.summary import (best_grid, budget_label, grid_notes, iso_text, ms_text, number_text, speed_band,
                                    speedup_text)
from bench.core.flags import FLAGGED, FLAGGED_NOTE, flag_mark
from bench.report.data import DatasetPart, ReportData
from bench.report.profiles import profiles_html

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1300px;padding:0 1em;line-height:1.4}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f3f3f3} td.l,th.l{text-align:left}
.busy{background:#fdd;border:2px solid #c00;padding:0.6em 1em;margin:1em 0}
.lead{font-size:15px;max-width:60em} .note{color:#555;font-size:13px;max-width:70em}
details{margin:0.5em 0 1.5em} summary{cursor:pointer;color:#1a5fb4}
.scroll{overflow-x:auto;max-width:100%;border:1px solid #eee}
img{max-width:100%;height:auto} .slow{color:#c00} .ideal{color:#080;font-weight:bold}
"""


def _cells(data) -> pd.DataFrame:
    """A table's cells as objects: pandas would turn a column of strings into its string dtype, and the
    Markup among them into plain text that _table then escapes."""
    return pd.DataFrame(data, dtype=object)


def _table(frame: pd.DataFrame, left: tuple[str, ...] = (), table_id: str = "") -> str:
    """A compact table of formatted cells; `left` names the text columns. Every cell is escaped but
    the Markup ones this module builds: a run folder is data from anywhere, and a `<script>` in a row's
    field must read as text."""
    cls = lambda c: " class='l'" if c in left else ""  # noqa: E731
    head = "".join(f"<th{cls(c)}>{escape(c)}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td{cls(c)}>{escape(v)}</td>" for c, v in zip(frame.columns, row)) + "</tr>"
                   for row in frame.itertuples(index=False))
    ident = f" id='{escape(table_id)}'" if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _every_column(frame: pd.DataFrame, what: str) -> str:
    """The full table, one click away, scrolling inside its own box."""
    return (f"<details><summary>every column of {html.escape(what)} ({len(frame)} rows, {len(frame.columns)} "
            f"columns; also in the run's CSV files)</summary><div class='scroll'>"
            + frame.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep="") + "</div></details>")


BAND_CLASSES = {"slow": "slow", "near-ideal": "ideal"}


def _speed(speedup: float, low: float = math.nan, high: float = math.nan, ideal: float = math.inf) -> Markup:
    text = speedup_text(speedup, low, high)
    band = BAND_CLASSES.get(speed_band(speedup, ideal))
    return Markup("<span class='{}'>{}</span>").format(band, text) if band else escape(text)


def summary_html(data: ReportData) -> list[str]:
    parts = []
    for part in data.parts:  # the question first: is it worth it against the dense frontier
        if data.several_datasets:
            parts.append(f"<h3>{html.escape(part.dataset)}: against its own dense frontier</h3>")
        parts += model_answers_html(part)
    best = data.best
    if not best.empty:
        densities, grid = best_grid(best)
        rows = [{"B": batch, "masks": masks, "source": source,
                 **{f"d = {d:g}": "" if r is None else
                    Markup("{} (k {}){}").format(_speed(r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"], r["ideal"]),
                                                 r["block_size"], flag_mark(r))
                    for d, r in zip(densities, cells)}}
                for (batch, masks, source), cells in grid]
        parts += ["<h3>The best block size per batch and density</h3><p class='note'>One layer, each case's "
                  "speedup over its fastest dense path (median [95% interval]) at the block size that ran it fastest; "
                  "red: slower than that; bold green: 0.85 of the ideal 1 / density or better"
                  + "".join(f"; {html.escape(note)}" for note in grid_notes(grid)) + ".</p>",
                  _table(_cells(rows), left=("masks", "source"), table_id="best-configurations")]
    return parts


def model_answers_html(part: DatasetPart) -> list[str]:
    """Is it worth it: the fastest model of all per error budget, each CondNet against the fastest dense
    net as accurate, and the goal."""
    fastest, iso, twin, ref = part.fastest, part.iso, part.twin, part.reference
    parts = []
    if not fastest.empty:
        frame = _cells({
            "test error vs dense": [budget_label(b) for b in fastest["budget"]], "B": fastest["batch"],
            "fastest model": fastest["label"], "runs as": fastest["provider"],
            "ms per batch": [ms_text(t) for t in fastest["median_s"]],
            "conditional": [Markup("<b>yes</b>") if c else "no" for c in fastest["conditional"]],
            "its error vs dense": [f"{100 * c:+.2f} points" for c in fastest["error_change"]]})
        parts += ["<h3>Is it worth it? The fastest model of all within each test-error budget</h3><p class='note'>"
                  "CondNets and dense nets of every width, each under its fastest correct provider (its figure "
                  f"of record); budget: the mean test error's rise over the {html.escape(str(ref))} dense net's, "
                  "paired per seed.</p>",
                  _table(frame, left=("test error vs dense", "fastest model", "runs as", "conditional"),
                         table_id="fastest-models")]
    if not iso.empty:
        rows = []
        for r in iso.sort_values(["batch", "policy", "tau"], ascending=[True, True, False]).to_dict("records"):
            compared = r["verdict"] == "compared"
            t = twin.get((r["policy"], r["tau"], r["hidden"], r["batch"]))
            rows.append({
                "CondNet": label(r["policy"], r["tau"], r["hidden"]), "B": r["batch"],
                "ms per batch": ms_text(r["median_s"]),
                "fastest dense as accurate": (f"{label('dense', 1.0, r['dense_hidden'], ref)}, {r['dense_provider']}: "
                                              f"{ms_text(r['dense_median_s'])} ms") if compared else "none",
                "its error vs the CondNet's": (f"{100 * r['error_change']:+.2f} points" if compared else ""),
                "x over it": (_speed(r["speedup"], r["speedup_low"], r["speedup_high"]) + ("" if r["paired"] else " unpaired")
                              if compared else iso_text(r)),
                "twin x": "" if t is None else _speed(t["speedup"], t["speedup_ci_low"], t["speedup_ci_high"])})
        parts += ["<h3>Each CondNet against the fastest dense net as accurate</h3><p class='note'>As accurate: "
                  "the dense net's test error, paired per seed over the seeds both were trained on, is on "
                  "average not worse than the CondNet's (ties count). x: the CondNet's speedup over it, median "
                  "per-round ratio of the same interleaved rounds [95% bootstrap interval]; twin x: over the "
                  "dense net of the CondNet's own shape under condbench's forward.</p>",
                  _table(_cells(rows), left=("CondNet", "fastest dense as accurate"), table_id="iso-accuracy"),
                  "<p><b>The goal</b> (a CondNet faster than every dense width under every provider at equal "
                  "accuracy): " + html.escape("; ".join(part.goal)) + ".</p>"]
    return parts


def break_even_html(be: pd.DataFrame) -> list[str]:
    if be.empty:
        return []
    frame = _cells({"device": be["device"], "dtype": be["dtype"],
                          "K x N": [f"{a}x{b}" for a, b in zip(be["in_features"], be["out_features"])],
                          "k": be["block_size"], "B": be["batch"], "masks": be["masks"], "source": be["mask_source"],
                          "break-even density": [describe(r) for r in be.to_dict("records")],
                          "best x (at d)": [f"{s:.2f} (d {d:g})" for s, d in zip(be["best_speedup"], be["best_density"])]})
    return ["<h3>Where it stops paying</h3><p class='note'>The density (share of each masked side's blocks "
            "active, as the suite asked) at which the sparse layer stops beating dense, interpolated between "
            "the two measured densities around the crossing; &gt; d: it won at every density measured, up to "
            "d; &lt; d: at none; *: not monotone"
            + (f"; {html.escape(FLAGGED_NOTE)}" if be["flagged"].any() else "") + ".</p>",
            _table(frame, left=("device", "dtype", "masks", "source"), table_id="break-even")]


def goals_html(goals: pd.DataFrame) -> list[str]:
    if goals.empty:
        return []
    frame = _cells({"goal": goals["goal"], "metric": goals["metric"], "target": goals["target"].map("{:.2f}".format),
                          "measured": [f"{v:.2f}{FLAGGED if f else ''}" for v, f in zip(goals["measured"], goals["flagged"])],
                          "verdict": ["met" if m else Markup("<span class='slow'>missed by {:.2f}</span>").format(s)
                                      for m, s in zip(goals["met"], goals["short_by"])]})
    note = f"; {html.escape(FLAGGED_NOTE)}" if goals["flagged"].any() else ""
    return [f"<h3>Speed goals</h3><p class='note'>The goals this run is checked against (bench/goals.py){note}.</p>",
            _table(frame, left=("goal", "metric"))]


def kernels_html(kernels: pd.DataFrame) -> list[str]:
    parts = [f"<h2>Every kernel case</h2><p class='note'>Medians of interleaved rounds; {html.escape(baseline_note(kernels))} "
             "[95% intervals]; work density: the share of the dense work that bounds the speedup; of ideal: x over "
             "1 / work density.</p>"]
    for sweep, g in kernels.groupby("sweep", sort=False):
        g = in_reading_order(g)
        ok = g["status"] == "ok"
        frame = _cells({
            "B": g["batch"], "k": g["block_size"], "masks": g["masks"], "source": g["mask_source"],
            "density asked": [asked_density(r).replace("tau", "τ") for r in g.to_dict("records")],
            "work density": g["ideal_density"].map(lambda v: number_text(v, ".3f")),
            "baseline ms": [f"{number_text(1e3 * r['baseline_median_s'], '.3f')} {baseline_cell(r)}" if o else ""
                            for r, o in zip(g.to_dict("records"), ok)],
            "sparse ms": (g["sparse_median_s"] * 1e3).map(lambda v: number_text(v, ".3f")),
            "x [95%]": [_speed(s, lo, hi, 1 / d if d > 0 else math.inf) if o else "" for s, lo, hi, d, o in
                        zip(g["speedup"], g.get("speedup_ci_low", math.nan), g.get("speedup_ci_high", math.nan),
                            g["ideal_density"], ok)],
            "x plain": g["plain_speedup"].map(lambda v: number_text(v, ".2f")),
            "of ideal": g["fraction_of_ideal"].map(lambda v: number_text(v, ".2f")),
            "of roofline": g["fraction_of_roofline"].map(lambda v: number_text(v, ".2f")),
            "kernel": kernel_cells(g),
            "cache": [cache_cell(r) for r in g.to_dict("records")],
            "status": [_status(r) for r in g.to_dict("records")]})
        if all(baseline_cell(r) == "plain" for r in g.to_dict("records")):
            frame = frame.drop(columns="x plain")  # the headline is over plain x @ W.T already
        fixed = ", ".join(str(v) for v in (g["device"].iloc[0], g["dtype"].iloc[0],
                                           f"{g['in_features'].iloc[0]}x{g['out_features'].iloc[0]}"))
        parts += [f"<h3>Sweep {html.escape(sweep)} ({html.escape(fixed)})</h3>",
                  _table(frame, left=("masks", "source", "kernel", "cache", "status"), table_id=f"sweep-{sweep}")]
    parts.append(f"<p class='note'>{html.escape(cache_note(kernels))}.</p>")
    if legend := kernel_legend(kernels):
        parts.append("<p class='note'>kernel: the path ours took, recorded on its checked call: "
                     + "; ".join(f"<b>{html.escape(name)}</b>: {html.escape(about)}" for name, about in legend) + ".</p>")
    parts.append(_every_column(kernels, "every kernel case"))
    return parts


def _status(row: dict) -> str:
    """ok, with the row's flags (busy machine, noisy, above the roofline) where it has any; else why it failed."""
    if row["status"] != "ok":
        return f"{row['status']}: {row.get('error') or ''}"
    flags = row.get("load_flags")
    return f"ok ! {flags}" if isinstance(flags, str) and flags else "ok"


def peers_html(data: ReportData) -> list[str]:
    """The terminal's peer table: per case with peers, ours, the fastest peer and ours' rank."""
    peers = data.peers
    if peers.empty:
        return []
    names = [c for c in peers.columns if c in set(data.run.providers["provider"])]
    rows = []
    for r in peers.to_dict("records"):
        best, ours_wins = fastest_peer(r, names)
        ours = _speed(r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"])
        peer = "" if best is None else Markup("{} {}").format(best, _speed(*r[best]))
        if ours_wins:
            ours = Markup("<b>{}</b>").format(ours)
        else:
            peer = Markup("<b>{}</b>").format(peer)
        rows.append({"sweep": r["sweep"], "B": r["batch"], "k": r["block_size"], "masks": r["masks"],
                     "source": r["mask_source"], "density asked": asked_density(r).replace("tau", "τ"),
                     "work density": f"{r['ideal_density']:.3f}", "ours x": ours,
                     "fastest peer x": peer, "ours' rank": f"{int(r['ours_rank'])} of {int(r['providers_timed'])}"})
    return [_table(_cells(rows), left=("sweep", "masks", "source", "fastest peer x"), table_id="peers")]


def models_html(part: DatasetPart, dataset: str = "") -> list[str]:
    """The trained models' table (of `dataset`, named in its heading where a run has several)."""
    m, speeds, ref, run = part.models, part.speeds, part.reference, part.run
    if m.empty:
        return []
    cell = {(r["policy"], r["tau"], r["hidden"], r["batch"]): r for r in speeds.to_dict("records")}
    batches = sorted(speeds["batch"].unique()) if not speeds.empty else []
    rows = []
    for r in m.to_dict("records"):
        error = f"{100 * r['test_error']:.2f}"
        if r.get("test_error_low", math.nan) == r.get("test_error_low", math.nan):
            error += f" [{100 * r['test_error_low']:.2f}, {100 * r['test_error_high']:.2f}]"
        change = r.get("error_change", math.nan)
        name = label(r["policy"], r["tau"], r["hidden"], ref)
        row = {"model": Markup("{} <span class='slow'>check failed</span>").format(name)
                        if isinstance(r.get("error"), str) else name,
               "seeds": r["seeds"], "test error %": error,
               **({"float32 error %": f"{100 * r['checkpoint_test_error']:.2f}"
                   if r.get("checkpoint_test_error", math.nan) == r.get("checkpoint_test_error", math.nan) else ""}
                  if "checkpoint_test_error" in m else {}),
               "vs dense, points": "" if change != change else f"{100 * change:+.2f}",
               "density per layer": r["realized_density"]}
        for b in batches:
            s = cell.get((r["policy"], r["tau"], r["hidden"], b))
            row[f"x at B={b}"] = "" if s is None else _speed(s["speedup"], s["speedup_ci_low"], s["speedup_ci_high"])
        ideal = r.get("flop_ideal", math.nan)
        row["FLOP ideal x"] = "" if ideal != ideal else f"{ideal:.2f}"
        if batches and ideal == ideal and (s := cell.get((r["policy"], r["tau"], r["hidden"], batches[-1]))) is not None:
            row[f"of ideal, B={batches[-1]}"] = f"{s['speedup'] / ideal:.2f}"
        rows.append(row)
    where = inference_where(run.models)
    parts = [f"<h2>Trained models{html.escape(f' on {dataset}' if dataset else '')}{html.escape(f', {where}' if where else '')}"
             "</h2><p class='note'>Test error: mean [95% interval] over the seeds (the wider "
             "of the t-interval and the exact binomial one); vs dense: the change against the dense net on the "
             "same splits, paired per seed; x: end-to-end inference speedup over the same-shape dense twin (condbench's forward), median [95% "
             "interval]; FLOP ideal: dense FLOPs over the FLOPs really run, policies included."
             + (" Test error: that of the inference timed, in its dtype (every comparison reads it); float32 error: "
                "the float32 checkpoint's." if "checkpoint_test_error" in m else "") + "</p>",
             _table(_cells(rows), left=("model", "density per layer"), table_id="models"),
             _every_column(run.models.assign(test_error_pct=100 * run.models["test_error"]), "every model, each seed")]
    if not run.model_times.empty and "median_s" in run.model_times:
        times = run.model_times.drop(columns=["samples"]).copy()
        for c in ("median_s", "iqr_s", "low_s", "high_s"):
            times[c.removesuffix("_s") + "_ms"] = 1e3 * times.pop(c)
        parts.append(_every_column(times, "every model under every provider, each batch (ms; a provider that "
                                          "could not run or failed its check says why)"))
    if not run.model_speeds.empty:
        timings = run.model_speeds.copy()
        for c in [c for c in timings.columns if c.endswith("_s")]:
            timings[c.removesuffix("_s") + "_ms"] = 1e3 * timings.pop(c)
        parts.append(_every_column(timings, "the models' timings, each seed and batch (ms)"))
    return parts


def environment_html(env: dict) -> list[str]:
    """The machine as a two-column table, nested entries flattened to 'a / b'."""
    rows = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(f"{prefix} / {key}" if prefix else str(key), inner)
        else:
            rows.append((prefix, value))

    walk("", env)
    body = "".join(f"<tr><th class='l'>{html.escape(k)}</th><td class='l'>{html.escape(_plain(v))}</td></tr>"
                   for k, v in rows)
    return ["<h2>The machine and the software</h2><details><summary>every entry of env.json "
            f"({len(rows)})</summary><div class='scroll'><table>{body}</table></div></details>"]


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value) if len(value) < 12 else f"{len(value)} entries"
    return str(value)


def page(data: ReportData, images: dict[str, bytes], out: Path, lead: list[str]) -> str:
    """The whole page; `images` are the report's PNGs by name, `lead` its opening paragraphs."""
    run = data.run
    def img(name: str, alt: str) -> list[str]:
        if name not in images:
            return []
        return [f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{base64.b64encode(images[name]).decode()}'>"]

    parts = [f"<h1>condbench run {html.escape(run.run_id)}</h1>", *lead,
             "<h2>The answer</h2>", *summary_html(data),
             *[tag for name in images if name.split("-")[0] == "pareto"  # one per dataset (bench.report.terminal.pareto_parts)
               for tag in img(name, f"test error against time per batch, every trained {name[7:]} model".replace("  ", " "))],
             *break_even_html(data.break_even), *goals_html(data.goals)]
    if not run.kernels.empty:
        parts += kernels_html(run.kernels)
    for name, alt in (("speedup_vs_density", "speedup against density"), ("speedup_vs_batch", "speedup against batch"),
                      ("providers", "every provider"), ("roofline", "measured roofline")):
        if name in images:
            parts += [f"<h3>{alt[0].upper() + alt[1:]}</h3>", *img(name, alt)]
    if not run.providers.empty:
        parts += ["<h2>Ours against its peers</h2><p class='note'>Each provider's speedup over the dense "
                  "baseline (median of the per-round ratios, 95% interval), each checked in float64 first; one "
                  "that could not run a case, or computed it wrong, says why in the full table. Bold: the "
                  "fastest of the row; rank: ours among every provider timed.</p>",
                  *peers_html(data), _every_column(run.providers, "every provider of every case")]
    parts += profiles_html(run, out)
    for part in data.parts:
        parts += models_html(part, part.dataset if data.several_datasets else "")
    parts += environment_html(run.env)
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            "content='width=device-width, initial-scale=1'><title>condbench " + html.escape(run.run_id) +
            f"</title><style>{STYLE}</style></head><body>" + "\n".join(parts) + "</body></html>")
