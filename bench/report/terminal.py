"""Reports of a run: rich tables on the terminal, PNG plots and one self-contained HTML page."""

from __future__ import annotations

import html
import math
import os
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from bench.analysis.break_even import describe
from bench.analysis.frontier import label, reference_hidden
from bench.analysis.models_summary import inference_where
from bench.analysis.rows import (asked_density, baseline_cell, baseline_note, cache_cell, cache_note, fastest_peer,
                                 in_reading_order, kernel_cells, kernel_legend, machine_line)
from bench.analysis.summary import best_grid, budget_label, grid_notes, ms_text, no_interval, number_text, speed_band
from bench.core.flags import FLAGGED, FLAGGED_NOTE, flag_mark
from bench.report import html as report_html
from bench.report.data import DatasetPart, ReportData
from bench.report.plots import (figure_png, plot_pareto, plot_providers, plot_roofline, plot_speedup_vs_batch,
                                plot_speedup_vs_density)
from bench.report.profiles import print_profiles
from bench.store.results import Run
from bench.report.tables import KEEP, Cell, Column, fitted_table


BAND_COLOURS = {"slow": "red", "near-ideal": "bold green", "": "green"}


def _speed_cell(speedup: float, ideal: float, low: float = float("nan"), high: float = float("nan")) -> str:
    """'2.44 [2.31, 2.58]': the speedup and its 95% interval (runs older than intervals show none)."""
    color = BAND_COLOURS[speed_band(speedup, ideal)]
    interval = "" if no_interval(low, high) else f" [{low:.2f}, {high:.2f}]"
    return f"[{color}]{speedup:.2f}[/{color}]{interval}"


def _peer_cell(value, short: bool = False) -> str:
    if isinstance(value, tuple):
        return _speed_cell(value[0], float("inf"), *(() if short else (value[1], value[2])))
    return "" if not isinstance(value, str) else f"[yellow]{value}[/yellow]"


def _status_cell(row: dict) -> str:
    flags = row.get("load_flags", "")
    if isinstance(flags, str) and flags:
        return f"[yellow]ok ! {flags}[/yellow]"
    return "ok"


def report_console() -> Console:
    """The terminal's width on a terminal; in a pipe or a CI log (no width of its own), $COLUMNS or 160."""
    if sys.stdout.isatty():
        return Console()
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() and int(columns) > 0 else 160)


def print_report(data: ReportData, console: Console | None = None) -> None:
    """The run's report for the terminal, the answer first: the summary at a glance, then each sweep,
    the goals, the break-even densities, the peers, the profiles and the models, every table fitted to
    the console's width (bench.report.tables)."""
    console = console or report_console()
    width = console.width
    run = data.run
    env = run.env
    console.print(f"[bold]{escape(run.run_id)}[/bold] on {escape(machine_line(env))}", highlight=False)
    if data.wall_time:
        console.print(data.wall_time, highlight=False)
    if data.roofline:
        console.print(data.roofline, highlight=False)
    if isinstance(gaps := env.get("partial"), list) and gaps:
        console.print(f"[bold red]partial run[/bold red] (merged with --partial): {escape('; '.join(map(str, gaps)))}",
                      highlight=False)
    if data.load_warning:
        console.print(Panel(data.load_warning, title="busy machine", style="bold red"))
    print_summary(data, console)
    k = run.kernels
    if not k.empty:
        for sweep, group in k.groupby("sweep", sort=False):
            console.print(kernel_table(sweep, in_reading_order(group), width))
            for r in group[group["status"] != "ok"].to_dict("records"):
                console.print(f"[red]{r['case_id']}: {r['status']}: {r['error']}[/red]", highlight=False)
        goals = data.goals
        if not goals.empty:
            rows = [[r["goal"], r["metric"], f"{r['target']:.2f}", f"{r['measured']:.2f}{FLAGGED if r['flagged'] else ''}",
                     "[green]met[/green]" if r["met"] else f"[red]missed by {r['short_by']:.2f}[/red]"]
                    for r in goals.to_dict("records")]
            console.print(fitted_table("speed goals this run is checked against (bench/goals.py)",
                                       [Column("goal", KEEP, "left"), Column("metric", 20, label="metric"),
                                        Column("target", KEEP), Column("measured", KEEP), Column("verdict", KEEP)],
                                       rows, width, caption=FLAGGED_NOTE if goals["flagged"].any() else ""))
        be = data.break_even
        if not be.empty:
            rows = [[r["device"], r["dtype"], f"{r['in_features']}x{r['out_features']}", str(r["block_size"]),
                     str(r["batch"]), r["masks"], r["mask_source"], describe(r),
                     f"{r['best_speedup']:.2f} (d {r['best_density']:g})"] for r in be.to_dict("records")]
            console.print(fitted_table(
                "where it stops paying: the density at which sparse stops beating dense",
                [Column("device", 10), Column("dtype", 10), Column("K x N", 10), Column("k", KEEP, label="k"),
                 Column("B", KEEP, label="B"), Column("masks", 90, label="masks"), Column("source", 85, label="source"),
                 Column("break-even\ndensity", KEEP), Column("best x (at d)", 60)],
                rows, width, caption="; ".join([BREAK_EVEN_NOTE, *([FLAGGED_NOTE] if be["flagged"].any() else [])])))
    peers = data.peers
    if not peers.empty:
        console.print(peer_table(peers, [c for c in peers.columns if c in set(run.providers["provider"])], width))
    print_profiles(run, console)
    for part in data.parts:
        if data.several_datasets:
            console.print(f"\n[bold]the {part.dataset} models[/bold]", highlight=False)
        print_models(part, console)
        print_model_providers(part.run, console)


BREAK_EVEN_NOTE = ("density: the share of each masked side's blocks active, as the suite asked, interpolated "
                   "between the two measured densities around the crossing; > d: sparse won at every density "
                   "measured (up to d); < d: at none (down to d); *: not monotone")


def kernel_table(sweep: str, group: pd.DataFrame, width: int) -> Table:
    """One sweep's cases: the columns that vary, the best block size per batch and density starred."""
    best = _winners(group)
    rows = []
    for r, kernel in zip(group.to_dict("records"), kernel_cells(group)):
        # escaped: a run folder's text is data, and rich would read "[/x]" in a field as markup (and fail)
        head = [escape(str(v)) for v in (r["device"], r["dtype"], r["regime_used"], r["batch"],
                                         f"{r['in_features']}x{r['out_features']}", r["block_size"], r["masks"],
                                         r["mask_source"], asked_density(r))]
        if r["status"] != "ok":
            rows.append(head + ["", "", "", "", "[red]failed[/red]", "", "", "", "", "", cache_cell(r),
                                f"[red]{r['status']}[/red]"])
            continue
        ideal = 1.0 / r["ideal_density"] if r["ideal_density"] > 0 else float("inf")
        star = " [bold yellow]*[/bold yellow]" if r["case_id"] in best else ""
        low, high = r.get("speedup_ci_low", math.nan), r.get("speedup_ci_high", math.nan)
        rows.append(head + [f"{r['ideal_density']:.3f}", baseline_cell(r), f"{r['baseline_median_s'] * 1e3:.3f}",
                            f"{r['sparse_median_s'] * 1e3:.3f}",
                            (_speed_cell(r["speedup"], ideal, low, high) + star, _speed_cell(r["speedup"], ideal) + star),
                            number_text(r.get("plain_speedup")), f"{ideal:.1f}", number_text(r.get("fraction_of_ideal")),
                            number_text(r.get("fraction_of_roofline")), escape(kernel), cache_cell(r),
                            _status_cell(r)])
    columns = [Column("device", 10), Column("dtype", 10), Column("regime", 20, label="regime"), Column("B", KEEP, label="B"),
               Column("K x N", 10), Column("k", KEEP, label="k"), Column("masks", 90, label="masks"),
               Column("source", 85, label="source"), Column("density\nasked", KEEP, label="density"),
               Column("work\ndensity", 60), Column("base-\nline", 75, "left", label="baseline"),
               Column("baseline\nms", 30), Column("sparse\nms", 40), Column("x [95%]", KEEP),
               Column("x\nplain", 45), Column("ideal\nx", 35), Column("of\nideal", 70), Column("of\nroofline", 25),
               Column("kernel", 80, "left", label="kernel"), Column("cache", 80, "left", label="cache"),
               Column("status", 95, "left", label="status")]
    if all(baseline_cell(r) == "plain" for r in group.to_dict("records")):  # x is over plain x @ W.T already
        drop = next(i for i, c in enumerate(columns) if c.header == "x\nplain")
        columns, rows = columns[:drop] + columns[drop + 1:], [r[:drop] + r[drop + 1:] for r in rows]
    star = "; *: the best block size and mask side at its batch and density" if best else ""
    kernels = "".join(f"; {name}: {about}" for name, about in kernel_legend(group))
    return fitted_table(f"sweep {sweep}", columns, rows, width, files="kernels.csv",
                        caption=f"{baseline_note(group)}, medians and 95% intervals{star}; work density: the share of "
                                f"the dense work really needed; {cache_note(group)}; kernel: the path ours took{kernels}")


def _winners(group: pd.DataFrame) -> set[str]:
    """Case ids of the fastest row per batch and asked density (or tau), where more than one competes."""
    ok = group[group["status"] == "ok"].copy()
    if ok.empty:
        return set()
    tau = pd.to_numeric(ok["tau"], errors="coerce")  # None outside the trained-mask cases
    ok["asked"] = ok["requested_density"].where(ok["mask_source"] != "trained", -tau)
    winners = set()
    for _, g in ok.groupby(["batch", "asked", "mask_source"], dropna=False):
        if len(g) > 1:
            winners.add(g.loc[g["speedup"].idxmax(), "case_id"])
    return winners


def peer_table(peers: pd.DataFrame, names: list[str], width: int) -> Table:
    """Per case with peers: ours and the fastest peer (the winner of the row is bold), then each peer."""
    rows = []
    for r in peers.to_dict("records"):
        best_peer, ours_wins = fastest_peer(r, names)
        ours = (_speed_cell(r["speedup"], float("inf"), r["speedup_ci_low"], r["speedup_ci_high"]),
                _speed_cell(r["speedup"], float("inf")))
        if ours_wins:
            ours = tuple(f"[bold]{c}[/bold]" for c in ours)
        best = "" if best_peer is None else f"{best_peer} {r[best_peer][0]:.2f}"
        if best_peer is not None and not ours_wins:
            best = f"[bold]{best}[/bold]"
        rows.append([r["sweep"], str(r["batch"]), str(r["block_size"]), r["masks"], r["mask_source"], asked_density(r),
                     f"{r['ideal_density']:.3f}", ours, best,
                     *[(_peer_cell(r.get(n)), _peer_cell(r.get(n), short=True)) for n in names],
                     f"{int(r['ours_rank'])} of {int(r['providers_timed'])}"])
    columns = [Column("sweep", 50, "left", label="sweep"), Column("B", KEEP, label="B"), Column("k", KEEP, label="k"),
               Column("masks", 80, label="masks"), Column("source", 85, label="source"),
               Column("density\nasked", KEEP, label="density"), Column("work\ndensity", 45), Column("ours x", KEEP), Column("best peer x", KEEP, "left"),
               *[Column(n, 20) for n in names], Column("ours'\nrank", KEEP)]
    return fitted_table("ours against its peers: each one's speedup over the case's baseline (its fastest dense path), checked first",
                        columns, rows, width, files="providers.csv",
                        caption="bold: the fastest of the row; rank: ours among every provider timed")


def print_summary(data: ReportData, console: Console) -> None:
    """The answer first: the best block size per batch and density, and the fastest model within each
    error budget (bench.analysis.summary)."""
    for part in data.parts:  # the question first: is it worth it against the dense frontier
        if data.several_datasets:
            console.print(f"\n[bold]{part.dataset}[/bold]: is it worth it against its own dense frontier", highlight=False)
        print_model_answers(part, console)
    width = console.width
    best = data.best
    if not best.empty:
        densities, grid = best_grid(best)
        # Short cells name the block size only where it is not the one that wins most often.
        usual = int(best["block_size"].mode().iloc[0])

        def cell(r: dict | None) -> Cell:
            if r is None:
                return ""
            unusual = "" if r["block_size"] == usual else f" k{r['block_size']}"
            mark = flag_mark(r)
            return (f"{_speed_cell(r['speedup'], r['ideal'], r['speedup_ci_low'], r['speedup_ci_high'])} k{r['block_size']}{mark}",
                    f"{_speed_cell(r['speedup'], r['ideal'])}{unusual}{mark}")

        rows = [[str(batch), masks, source, *map(cell, cells)] for (batch, masks, source), cells in grid]
        caption = "red: slower than the best dense path; bold green: 0.85 of the ideal 1/density or better"
        console.print(fitted_table(
            f"at a glance: the best block size per batch and density (x over the best dense path; k {usual} where not named)",
            [Column("B", KEEP), Column("masks", KEEP, label="masks"), Column("source", KEEP, label="source"),
             *[Column(f"d {d:g}", KEEP) for d in densities]], rows, width,
            caption="; ".join([caption, *map(escape, grid_notes(grid))])))


def print_model_answers(part: DatasetPart, console: Console) -> None:
    """Is it worth it: the fastest model of all within each error budget, then each CondNet against the
    fastest dense net as accurate, then the goal (bench.analysis.frontier, bench.analysis.summary)."""
    width = console.width
    fastest, iso, twin, ref = part.fastest, part.iso, part.twin, part.reference
    if not fastest.empty:
        rows = [[budget_label(r["budget"]).removesuffix(" points").removeprefix("<= "), str(r["batch"]),
                 short_label(r["policy"], r["tau"], r["hidden"], ref), r["provider"],
                 ms_text(r["median_s"]), "[bold]yes[/bold]" if r["conditional"] else "no",
                 f"{100 * r['error_change']:+.2f}"] for r in fastest.to_dict("records")]
        console.print(fitted_table(
            "is it worth it? the fastest model of all within each test-error budget",
            [Column("budget", KEEP, "left"), Column("B", KEEP), Column("fastest model", KEEP, "left"),
             Column("runs as", KEEP, "left"), Column("ms", KEEP), Column("cond.", KEEP, "left"),
             Column("error", 50)], rows, width,
            caption=f"CondNets (cond.) and dense nets of every width (w), each under its fastest correct provider; "
                    f"budget and error: the test error's rise over the {ref} dense net's, paired per seed, in "
                    "points; ms: per batch"))
    if not iso.empty:
        rows = []
        for r in iso.sort_values(["batch", "policy", "tau"], ascending=[True, True, False]).to_dict("records"):
            compared = r["verdict"] == "compared"
            dense = (f"{short_label('dense', 1.0, r['dense_hidden'], ref)} {r['dense_provider']}" if compared else "none")
            x = "none as accurate"
            if compared:
                x = (_speed_cell(r["speedup"], 1.0, r["speedup_low"], r["speedup_high"]) + ("" if r["paired"] else " u"),
                     _speed_cell(r["speedup"], 1.0))
            t = twin.get((r["policy"], r["tau"], r["hidden"], r["batch"]))
            rows.append([short_label(r["policy"], r["tau"], r["hidden"], ref), str(r["batch"]),
                         ms_text(r["median_s"]), dense, x, "" if t is None else f"{t['speedup']:.2f}"])
        console.print(fitted_table(
            "each CondNet against the fastest dense net as accurate (x over it)",
            [Column("CondNet", KEEP, "left"), Column("B", KEEP), Column("ms", KEEP), Column("dense as accurate", KEEP, "left"),
             Column("x [95%]", KEEP), Column("twin x", 40)], rows, width,
            caption="as accurate: test error paired per seed, on average not worse; x: per-round ratio of the same "
                    "interleaved rounds (u: unpaired); twin x: over the dense net of its own shape, condbench's forward"))
        for line in part.goal:
            console.print(f"goal, {line}", highlight=False)


def short_label(policy: str, tau: float, hidden: str, ref: str | None) -> str:
    """A family's name in the terminal's narrow tables: 'reinforce 0.25', 'dense', 'dense w64'."""
    return label(policy, tau, hidden, ref).replace(" τ = ", " ").replace(" w = ", " w")


def print_models(part: DatasetPart, console: Console) -> None:
    """The trained models' table: test error, its change against dense, densities, speedups per batch,
    the FLOP ideal and the fraction of it reached; then each failed check in one line."""
    m, speeds, ref = part.models, part.speeds, part.reference
    if m.empty:
        return
    batches = sorted(speeds["batch"].unique()) if not speeds.empty else []
    cell = {(r["policy"], r["tau"], r["hidden"], r["batch"]): r for r in speeds.to_dict("records")}
    seeded = (m["seeds"] > 1).any()
    title = "trained models: test error against end-to-end inference speedup over the same-shape dense twin"
    if seeded:
        title += " (test error: mean [95% interval] over the seeds, each its own split)"
    caption = ("test error's interval: the wider of the t-interval over the seeds and the exact binomial one "
               "of all their test images; vs dense: the change against the dense net trained on the same "
               "split(s), paired per seed; x: speedup, median [95% interval]; of ideal: the speedup over the "
               "FLOP ideal (dense FLOPs / FLOPs run, policies included)")
    where = inference_where(part.run.models)
    if where:
        title += f" ({where})"
    low_precision = "checkpoint_test_error" in m and m["checkpoint_test_error"].notna().any()
    if low_precision:
        caption += ("; test error: that of the inference timed, in its dtype (every comparison reads it); "
                    "float32: the float32 checkpoint's")
    last = batches[-1] if batches else None
    columns = [Column("model", KEEP, "left"), Column("mode", 40, label="mode"),
               Column("seeds", 30, label="seeds"), Column("test\nerror %", KEEP),
               *([Column("float32\nerror %", KEEP)] if low_precision else []), Column("vs dense,\npoints", KEEP),
               Column("density\nper layer", 50), *[Column(f"x at\nB={b}", KEEP if b in (batches[0], last) else 60)
                                                    for b in batches]]
    if last:
        columns += [Column("FLOP\nideal x", 45), Column(f"of ideal,\nB={last}", 55)]
    rows = []
    for r in m.to_dict("records"):
        flags = r.get("load_flags")
        name = label(r["policy"], r["tau"], r["hidden"], ref).replace("τ", "tau")
        policy = f"[yellow]{name} ! {flags}[/yellow]" if isinstance(flags, str) and flags else name
        if isinstance(r.get("error"), str):
            policy = f"[red]{name} check failed[/red]"
        error = f"{100 * r['test_error']:.2f}"
        full_error = error
        if r.get("test_error_low", math.nan) == r.get("test_error_low", math.nan):
            full_error += f" [{100 * r['test_error_low']:.2f}, {100 * r['test_error_high']:.2f}]"
        ideal = r.get("flop_ideal", math.nan)
        ideal_cells = [f"{ideal:.2f}" if ideal == ideal else "–",
                       _fraction_of_ideal_cell(cell.get((r["policy"], r["tau"], r["hidden"], last)), ideal)] if last else []
        density = "/".join(d.strip().removeprefix("0") for d in str(r["realized_density"]).split(","))
        checkpoint_error = r.get("checkpoint_test_error", math.nan)
        rows.append([policy, r["inference_mode"], str(r["seeds"]), (full_error, error),
                     *([f"{100 * checkpoint_error:.2f}" if checkpoint_error == checkpoint_error else "–"] if low_precision else []),
                     _error_change_cell(r), density, *[_model_speed_cell(cell.get((r["policy"], r["tau"], r["hidden"], b)))
                                                       for b in batches], *ideal_cells])
    console.print(fitted_table(title, columns, rows, console.width, caption=caption, files="models.csv"))
    for r in m.to_dict("records"):
        if isinstance(r.get("error"), str):
            console.print(f"[red]{label(r['policy'], r['tau'], r['hidden'], ref).replace('τ', 'tau')} not timed: "
                          f"{r['error']}[/red]")


def model_provider_grid(run: Run) -> tuple[list[str], list[dict]]:
    """The providers of the timed models, and per timed model and batch its label and each provider's
    median ms (None: not timed), the fastest named; plus each provider note once (bench.core.model_providers)."""
    times = run.model_times
    if times.empty or "median_s" not in times:
        return [], []
    ref = reference_hidden(run.models)
    info = run.models.set_index("name")
    providers = list(dict.fromkeys(times["provider"]))
    rows = []
    for (name, batch), g in times.groupby(["name", "batch"], sort=False):
        ms = {r["provider"]: r["median_s"] for r in g.to_dict("records") if r["median_s"] == r["median_s"]}
        if not ms:
            continue
        m = info.loc[name]
        rows.append({"label": label(m["policy"], m["tau"], m["hidden"], ref), "batch": int(batch), "ms": ms,
                     "fastest": min(ms, key=ms.get)})
    return providers, rows


def model_provider_notes(run: Run) -> list[str]:
    """Each distinct reason a model provider did not give a number: one line per reason, naming how many
    models it concerns (a CondNet under a runtime that runs plain MLPs is one reason, not twelve lines)."""
    times = run.model_times
    if times.empty:
        return []
    notes = times[times["status"] != "ok"].drop_duplicates(["name", "provider"])
    return [f"{', '.join(dict.fromkeys(g['provider']))} {status} for {g['name'].nunique()} model(s): {error}"
            for (status, error), g in notes.groupby(["status", "error"], sort=False)]


def print_model_providers(run: Run, console: Console) -> None:
    providers, rows = model_provider_grid(run)
    if not rows:
        return
    cells = [[r["label"].replace("τ", "tau"), str(r["batch"]),
              *[("–" if p not in r["ms"] else (f"[bold]{ms_text(r['ms'][p])}[/bold]" if p == r["fastest"]
                                                else ms_text(r["ms"][p]))) for p in providers]] for r in rows]
    console.print(fitted_table(
        "the models under each provider: ms per batch, each checked first",
        [Column("model", KEEP, "left"), Column("B", KEEP), *[Column(p.replace("_", " "), KEEP) for p in providers]],
        cells, console.width, files="model_times.csv",
        caption="bold: the fastest, the model's figure of record; –: not run (below)"))
    for note in model_provider_notes(run):
        console.print(f"[yellow]note[/yellow]: {note}", highlight=False)


def _fraction_of_ideal_cell(speed: dict | None, ideal: float) -> Cell:
    """The speedup over its FLOP ideal, with the speedup's interval over the same ideal (a count)."""
    if speed is None or ideal != ideal or speed["speedup"] != speed["speedup"]:
        return "–"
    cell = f"{speed['speedup'] / ideal:.2f}"
    if speed["speedup_ci_low"] == speed["speedup_ci_low"]:
        return cell + f" [{speed['speedup_ci_low'] / ideal:.2f}, {speed['speedup_ci_high'] / ideal:.2f}]", cell
    return cell


def _error_change_cell(row: dict) -> Cell:
    """The test error's change against the dense net, in points, with its interval where seeds give one."""
    change = row.get("error_change", math.nan)
    if change != change:
        return "-"
    cell = f"{100 * change:+.2f}"
    low = row.get("error_change_low", math.nan)
    if low == low:
        return cell + f" [{100 * low:+.2f}, {100 * row['error_change_high']:+.2f}]", cell
    return cell


def _model_speed_cell(speed: dict | None) -> Cell:
    if speed is None:
        return ""
    return (_speed_cell(speed["speedup"], 1.0, speed["speedup_ci_low"], speed["speedup_ci_high"]),
            _speed_cell(speed["speedup"], 1.0))


def write_report(data: ReportData, out: Path) -> Path:
    """The HTML page (bench.report.html) and its figures as PNGs beside it, under `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = data.run
    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    if not run.kernels.empty and (run.kernels["status"] == "ok").any():
        figures["speedup_vs_density"] = plot_speedup_vs_density(run.kernels)
        figures["speedup_vs_batch"] = plot_speedup_vs_batch(run.kernels)
        if (providers := plot_providers(run)) is not None:
            figures["providers"] = providers
        if (roofline := plot_roofline(run)) is not None:
            figures["roofline"] = roofline
    for name, part in pareto_parts(data):
        figures[name] = plot_pareto(part.models, part.model_times)
    images = {}
    for name, fig in figures.items():
        images[name] = figure_png(fig)
        (out / f"{name}.png").write_bytes(images[name])
        plt.close(fig)
    lead = ["<p class='lead'>condbench measured, on this machine, when conditional computation (per-example "
            "block-sparse layers, Bengio et al. 2015) beats the dense layer: each kernel case against dense at "
            "its batch, block size and density, and trained CondNets against their dense twins, end to end. "
            "The answer comes first; every number's details follow.</p>",
            f"<p class='note'>{html.escape(machine_line(run.env))}.</p>",
            *([f"<div class='busy'><b>Busy machine.</b> {html.escape(data.load_warning)}</div>"] if data.load_warning else []),
            *([f"<div class='busy'><b>Partial run.</b> {html.escape('; '.join(map(str, gaps)))}.</div>"]
              if isinstance(gaps := run.env.get("partial"), list) and gaps else []),
            *([f"<p class='note'>{html.escape(wall[0].upper() + wall[1:])}.</p>"] if (wall := data.wall_time) else []),
            *([f"<p class='note'>{html.escape(roof[0].upper() + roof[1:])}.</p>"] if (roof := data.roofline) else [])]
    page = report_html.page(data, images, out, lead)
    (out / "index.html").write_text(page)
    return out / "index.html"


def pareto_parts(data: ReportData) -> list[tuple[str, Run]]:
    """The Pareto figures' names ("pareto", or "pareto-<dataset>" for a run of several) and their parts."""
    parts = [(part.dataset, part.run) for part in data.parts if not part.run.model_speeds.empty]
    return [("pareto" if len(parts) == 1 else f"pareto-{dataset}", part) for dataset, part in parts]
