"""Reports of a run: rich tables on the terminal, PNG plots and one self-contained HTML page."""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import sys
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from bench.cli_common import writable_folder
from bench.contention import BUSY_CORES
from bench.goals import check_goals
from bench.profile_report import print_profiles, profiles_html
from bench.results import Run, load_run, write_tables


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="plots and an HTML page for a run")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--out", type=Path, help="folder for the report (default: RUN_DIR/report)")
    p.set_defaults(run=run)


def _speed_cell(speedup: float, ideal: float, low: float = float("nan"), high: float = float("nan")) -> str:
    """'2.44 [2.31, 2.58]': the speedup and its 95% interval (runs older than intervals show none)."""
    color = "red" if speedup < 1.0 else ("bold green" if speedup >= 0.85 * ideal else "green")
    interval = "" if math.isnan(low) or math.isnan(high) else f" [{low:.2f}, {high:.2f}]"
    return f"[{color}]{speedup:.2f}[/{color}]{interval}"


def in_reading_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Kernel rows ordered as numbers, not as the strings of their case ids (which put B = 16 before 4 and
    k = 128 before 64): by batch, block size, mask source, then density, stably."""
    keys = [c for c in ("batch", "block_size", "mask_source", "requested_density", "ideal_density") if c in rows]
    return rows.sort_values(keys, kind="stable", na_position="last") if keys else rows


def break_even(kernels: pd.DataFrame) -> pd.DataFrame:
    """For each device, dtype, block size, batch and mask side: the smallest density measured at which
    the sparse layer beats dense, and the largest at which it does not (NaN: none measured)."""
    ok = kernels[(kernels["status"] == "ok") & (kernels["mask_source"] != "trained")]
    if ok.empty:
        return pd.DataFrame()
    rows = []
    for key, group in ok.groupby(["device", "dtype", "block_size", "batch", "masks"]):
        wins = group[group["speedup"] > 1.0]["requested_density"]
        losses = group[group["speedup"] <= 1.0]["requested_density"]
        rows.append(dict(zip(["device", "dtype", "block_size", "batch", "masks"], key),
                         smallest_winning_density=wins.min() if len(wins) else float("nan"),
                         largest_losing_density=losses.max() if len(losses) else float("nan"),
                         best_speedup=group["speedup"].max()))
    return pd.DataFrame(rows)


def peer_summary(run: Run) -> pd.DataFrame:
    """Per kernel case with peers: ours' median time, each provider's speedup over the dense baseline
    with its interval (or why it did not run), and ours' rank among all it was timed with."""
    long, k = run.providers, run.kernels
    if long.empty or "provider" not in long:
        return pd.DataFrame()
    long = long[long["role"] == "peer"]
    if long.empty:
        return pd.DataFrame()
    head = k.set_index("case_id")[["sweep", "batch", "block_size", "masks", "mask_source", "ideal_density",
                                   "speedup", "speedup_ci_low", "speedup_ci_high", "ours_rank", "providers_timed"]]
    rows = []
    for case_id, group in long.groupby("case_id", sort=False):
        row = {"case_id": case_id, **head.loc[case_id].to_dict()}
        for r in group.to_dict("records"):
            ok = r["status"] == "ok"
            row[r["provider"]] = (r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"]) if ok else r["status"]
        rows.append(row)
    summary = pd.DataFrame(rows)
    # Sweeps in the run's order, each one's rows as numbers.
    order = {sweep: i for i, sweep in enumerate(dict.fromkeys(summary["sweep"]))}
    return in_reading_order(summary).sort_values("sweep", key=lambda s: s.map(order), kind="stable")


def _peer_cell(value) -> str:
    if isinstance(value, tuple):
        return _speed_cell(value[0], float("inf"), value[1], value[2])
    return "" if not isinstance(value, str) else f"[yellow]{value}[/yellow]"


def load_warning(run: Run) -> str:
    """One sentence when the run shared its CPUs (at the start or during cases), else ""."""
    flagged = sum(int(t["contended"].fillna(False).astype(bool).sum()) for t in (run.kernels, run.models)
                  if not t.empty and "contended" in t)
    total = len(run.kernels) + len(run.models)
    start = run.env.get("load_at_start") or {}
    parts = []
    if start.get("others_cores", 0.0) >= BUSY_CORES:
        parts.append(f"other processes used {start['others_cores']:.2f} CPU(s) when it started")
    if flagged:
        parts.append(f"{flagged} of {total} cases ran while other processes or the hypervisor took CPU time "
                     "(flagged busy / oversubscribed / steal)")
    if not parts:
        return ""
    return ("This run shared its machine: " + "; ".join(parts) +
            ". Those timings are slow and noisy; do not trust their speedups. Rerun on a quiet machine "
            "(`--wait-quiet SECONDS`) or with `--free-cores-only`.")


PHASE_NAMES = {"training": "training", "model_timing": "model timing", "kernels": "kernels",
               "environment": "environment", "waiting_for_quiet": "waiting for quiet", "load_check": "load check"}


def wall_time_line(run: Run) -> str:
    """Where the run's wall time went (every invocation of it added up; the report is not in it), or ""."""
    sessions = run.env.get("wall_seconds") or []
    if not sessions:
        return ""
    totals: dict[str, float] = {}
    for session in sessions:
        for name, seconds in session.items():
            totals[name] = totals.get(name, 0.0) + seconds
    phases = ", ".join(f"{PHASE_NAMES.get(name, name)} {_duration(s)}" for name, s in
                       sorted(totals.items(), key=lambda item: -item[1]) if name != "total" and s >= 0.5)
    over = f" over {len(sessions)} invocations" if len(sessions) > 1 else ""
    return f"measured in {_duration(totals.get('total', 0.0))}{over}" + (f": {phases}" if phases else "")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def _status_cell(row) -> str:
    flags = getattr(row, "load_flags", "")
    if isinstance(flags, str) and flags:
        return f"[yellow]ok ! {flags}[/yellow]"
    return "ok"


def print_report(run: Run, console: Console | None = None) -> None:
    # A pipe or CI log has no width of its own; do not let rich squeeze the numbers into ellipses.
    console = console or Console(width=None if sys.stdout.isatty() else 220)
    env = run.env
    where = env.get("gpu", {}).get("name") if env.get("gpu") else env.get("cpu_model")
    if not env.get("gpu") and where and env.get("cpu_capability"):
        where += f" ({env['cpu_capability']}{', native bf16' if env.get('cpu_native_bf16') else ''})"
    console.print(f"[bold]{run.run_id}[/bold] on {where}, torch {env.get('torch')}, {env.get('torch_threads')} threads")
    if wall := wall_time_line(run):
        console.print(wall)
    if roof := roofline_line(run):
        console.print(roof, highlight=False)
    warning = load_warning(run)
    if warning:
        console.print(Panel(warning, title="busy machine", style="bold red"))
    k = run.kernels
    if not k.empty:
        for sweep, group in k.groupby("sweep", sort=False):
            group = in_reading_order(group)
            table = Table(title=f"sweep {sweep}: sparse vs dense (medians; x = speedup)")
            for col in ("device", "dtype", "regime", "B", "K x N", "k", "masks", "source", "density",
                        "dense ms", "sparse ms", "x", "ideal x", "of ideal", "of roofline", "status"):
                table.add_column(col, justify="right")
            for r in group.itertuples():
                head = [r.device, r.dtype, r.regime_used, str(r.batch), f"{r.in_features}x{r.out_features}",
                        str(r.block_size), r.masks, r.mask_source]
                if r.status != "ok":
                    table.add_row(*head, "", "", "", "", "", "", "", f"[red]{r.status}: {r.error}[/red]")
                    continue
                ideal = 1.0 / r.ideal_density if r.ideal_density > 0 else float("inf")
                table.add_row(*head, f"{r.ideal_density:.3f}", f"{r.dense_median_s * 1e3:.3f}",
                              f"{r.sparse_median_s * 1e3:.3f}", _speed_cell(r.speedup, ideal, getattr(r, "speedup_ci_low", float("nan")),
                                                                   getattr(r, "speedup_ci_high", float("nan"))),
                              f"{ideal:.1f}",
                              f"{r.fraction_of_ideal:.2f}", f"{r.fraction_of_roofline:.2f}", _status_cell(r))
            console.print(table)
        goals = check_goals(k)
        if not goals.empty:
            table = Table(title="speed goals of the kernels issue, on this run's rows")
            for col in ("goal", "metric", "target", "measured", "verdict"):
                table.add_column(col, justify="right")
            for r in goals.to_dict("records"):
                verdict = "[green]met[/green]" if r["met"] else f"[red]missed by {r['short_by']:.2f}[/red]"
                table.add_row(r["goal"], r["metric"], f"{r['target']:.2f}", f"{r['measured']:.2f}", verdict)
            console.print(table)
        be = break_even(k)
        if not be.empty:
            table = Table(title="where does it pay off? smallest density (of those measured) at which sparse beats dense")
            for col in be.columns:
                table.add_column(col.replace("_", " "), justify="right")
            missing = {"smallest_winning_density": "never", "largest_losing_density": "none"}
            for r in be.to_dict("records"):
                table.add_row(*[missing.get(col, "-") if isinstance(v, float) and v != v
                                else f"{v:.3g}" if isinstance(v, float) else str(v) for col, v in r.items()])
            console.print(table)
    peers = peer_summary(run)
    if not peers.empty:
        names = [c for c in peers.columns if c in set(run.providers["provider"])]
        table = Table(title="ours against its peers: each one's speedup over the dense baseline (x), checked "
                            "first; rank: ours among all timed")
        for col in ("sweep", "B", "k", "masks", "source", "density", "ours x", *names, "rank"):
            table.add_column(col, justify="right")
        for r in peers.to_dict("records"):
            table.add_row(r["sweep"], str(r["batch"]), str(r["block_size"]), r["masks"], r["mask_source"],
                          f"{r['ideal_density']:.3f}", _speed_cell(r["speedup"], float("inf"), r["speedup_ci_low"],
                                                                    r["speedup_ci_high"]),
                          *[_peer_cell(r.get(n)) for n in names], f"{int(r['ours_rank'])} of {int(r['providers_timed'])}")
        console.print(table)
    print_profiles(run, console)
    print_models(run.models, run.model_speeds, console)


def print_models(models: pd.DataFrame, speeds: pd.DataFrame, console: Console) -> None:
    """The trained models' table: test error, its change against dense, densities, speedups per batch,
    the FLOP ideal and the fraction of it reached; then each failed check in one line."""
    m = model_summary(models)
    if m.empty:
        return
    speeds = speed_summary(models, speeds)
    batches = sorted(speeds["batch"].unique()) if not speeds.empty else []
    cell = {(r["policy"], r["tau"], r["batch"]): r for r in speeds.to_dict("records")}
    seeded = (m["seeds"] > 1).any()
    title = "trained models: test error vs measured end-to-end inference speedup over the dense net"
    if seeded:
        title += " (test error: mean [95% interval] over the seeds, each its own split)"
    table = Table(title=title, caption="test error's interval: the wider of the t-interval over the seeds and the "
                                       "exact binomial one of all their test images; vs dense: the change against "
                                       "the dense net trained on the same split(s), paired per seed (interval over "
                                       "the seeds); speed: the first seed's model")
    last = batches[-1] if batches else None
    for col in (["policy", "tau", "mode", "seeds", "test error %", "vs dense, points", "density per layer"]
                + [f"x at B={b}" for b in batches] + (["FLOP ideal x", f"of ideal, B={last}"] if last else [])):
        table.add_column(col, justify="right")
    for r in m.to_dict("records"):
        flags = r.get("load_flags")
        policy = f"[yellow]{r['policy']} ! {flags}[/yellow]" if isinstance(flags, str) and flags else r["policy"]
        if isinstance(r.get("error"), str):
            policy = f"[red]{r['policy']} check failed[/red]"
        error = f"{100 * r['test_error']:.2f}"
        if r.get("test_error_low", math.nan) == r.get("test_error_low", math.nan):
            error += f" [{100 * r['test_error_low']:.2f}, {100 * r['test_error_high']:.2f}]"
        ideal = r.get("flop_ideal", math.nan)
        ideal_cells = [f"{ideal:.2f}" if ideal == ideal else "–",
                       _fraction_of_ideal_cell(cell.get((r["policy"], r["tau"], last)), ideal)] if last else []
        table.add_row(policy, f"{r['tau']:g}", r["inference_mode"], str(r["seeds"]), error, _error_change_cell(r),
                      r["realized_density"], *[_model_speed_cell(cell.get((r["policy"], r["tau"], b))) for b in batches],
                      *ideal_cells)
    console.print(table)
    for r in m.to_dict("records"):
        if isinstance(r.get("error"), str):
            console.print(f"[red]{r['policy']} tau {r['tau']:g} not timed: {r['error']}[/red]")


def _fraction_of_ideal_cell(speed: dict | None, ideal: float) -> str:
    """The speedup over its FLOP ideal, with the speedup's interval over the same ideal (a count)."""
    if speed is None or ideal != ideal or speed["speedup"] != speed["speedup"]:
        return "–"
    cell = f"{speed['speedup'] / ideal:.2f}"
    if speed["speedup_ci_low"] == speed["speedup_ci_low"]:
        cell += f" [{speed['speedup_ci_low'] / ideal:.2f}, {speed['speedup_ci_high'] / ideal:.2f}]"
    return cell


def _error_change_cell(row: dict) -> str:
    """The test error's change against the dense net, in points, with its interval where seeds give one."""
    change = row.get("error_change", math.nan)
    if change != change:
        return "-"
    cell = f"{100 * change:+.2f}"
    low = row.get("error_change_low", math.nan)
    if low == low:
        cell += f" [{100 * low:+.2f}, {100 * row['error_change_high']:+.2f}]"
    return cell


def _model_speed_cell(speed: dict | None) -> str:
    if speed is None:
        return ""
    return _speed_cell(speed["speedup"], 1.0, speed["speedup_ci_low"], speed["speedup_ci_high"])


def model_summary(models: pd.DataFrame) -> pd.DataFrame:
    """One row per policy x tau over its seeds: mean test error with its 95% interval (`_error_interval`);
    its change against the dense net trained on the same seeds' splits (`error_change`, paired
    per seed, with a t-interval from two shared seeds on); per-layer densities averaged, the median
    speedup per batch with the envelope of the seeds' intervals (a conservative bound, not a new
    interval; `speed_summary`)."""
    if models.empty:
        return models
    dense_error = {}
    if "seed" in models:
        dense = models[models["policy"] == "dense"]
        dense_error = dict(zip(dense["seed"], dense["test_error"].astype(float)))
    rows = []
    for (policy, tau), g in models.groupby(["policy", "tau"], sort=False):
        errors = g["test_error"].astype(float)
        n = len(g)
        row = {"policy": policy, "tau": tau, "inference_mode": g["inference_mode"].iloc[0], "seeds": n,
               "test_error": errors.mean()}
        interval = _error_interval(errors, g["test_examples"] if "test_examples" in g else None)
        if interval is not None:
            row["test_error_low"], row["test_error_high"] = interval
        # Paired per seed: a seed's split moves dense and sparse errors alike, so the difference is
        # what the policy costs, without the splits' spread.
        changes = [e - dense_error[s] for s, e in zip(g.get("seed", []), errors) if s in dense_error]
        if policy != "dense" and changes:
            row.update(error_change=sum(changes) / len(changes), error_change_seeds=len(changes))
            if len(changes) > 1:
                row["error_change_low"], row["error_change_high"] = _t_interval(pd.Series(changes))
        row["realized_density"] = ", ".join(f"{sum(col) / n:.3f}" for col in zip(*g["realized_density"]))
        if "flop_ideal" in g and g["flop_ideal"].notna().any():
            row["flop_ideal"] = float(g["flop_ideal"].dropna().iloc[0])  # the first seed's: the model timed
        if "error" in g and g["error"].notna().any():
            row["error"] = str(g["error"].dropna().iloc[0])
        if "load_flags" in g:
            row["load_flags"] = ",".join(sorted({f for v in g["load_flags"].dropna() for f in str(v).split(",") if f}))
        rows.append(row)
    return pd.DataFrame(rows)


def speed_summary(models: pd.DataFrame, speeds: pd.DataFrame) -> pd.DataFrame:
    """One row per policy x tau x batch over the seeds timed: the median speedup, and the envelope of
    the seeds' intervals (a conservative bound, not a new interval)."""
    if speeds.empty:
        return pd.DataFrame(columns=["policy", "tau", "batch", "speedup", "speedup_ci_low", "speedup_ci_high"])
    timed = speeds.merge(models[["name", "policy", "tau"]], on="name")
    return (timed.groupby(["policy", "tau", "batch"], sort=False)
            .agg(speedup=("speedup", "median"), speedup_ci_low=("speedup_ci_low", "min"),
                 speedup_ci_high=("speedup_ci_high", "max")).reset_index())


def _error_interval(errors: pd.Series, examples: pd.Series | None) -> tuple[float, float] | None:
    """A 95% interval of the mean test error: the wider of the t-interval over the seeds (from two on)
    and the exact (Clopper-Pearson) binomial interval of the errors pooled over every seed's test
    images (where the rows say how many). Either alone misleads: three seeds can agree by chance (the
    dense net erred on 7 of 269 images on each of three splits), and a binomial interval knows nothing
    of the spread between training runs. Clipped to [0, 1]."""
    from scipy import stats

    bounds = [_t_interval(errors)] if len(errors) > 1 else []
    if examples is not None and examples.notna().all():
        total = int(examples.sum())
        wrong = int(round(float((errors * examples).sum())))
        low = stats.beta.ppf(0.025, wrong, total - wrong + 1) if wrong > 0 else 0.0
        high = stats.beta.ppf(0.975, wrong + 1, total - wrong) if wrong < total else 1.0
        bounds.append((float(low), float(high)))
    if not bounds:
        return None
    # An error rate lies in [0, 1]; the t-interval of three small errors can reach below 0.
    return max(0.0, min(b[0] for b in bounds)), min(1.0, max(b[1] for b in bounds))


def _t_interval(values: pd.Series) -> tuple[float, float]:
    """The 95% t-interval of the mean of at least two values."""
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean() - half, values.mean() + half


# ---- plots -------------------------------------------------------------------------------------------

def _figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _error_bars(g: pd.DataFrame, value: str = "speedup", low: str = "speedup_ci_low",
                high: str = "speedup_ci_high"):
    """matplotlib's asymmetric error bars from a value and its interval's columns (None without them)."""
    if low not in g or high not in g:
        return None
    return [(g[value] - g[low]).clip(lower=0), (g[high] - g[value]).clip(lower=0)]


def plot_speedup_vs_density(k: pd.DataFrame):
    import matplotlib.pyplot as plt

    ok = k[(k["status"] == "ok") & (k["mask_source"] != "trained")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (bs, batch, masks, source, device), g in ok.groupby(["block_size", "batch", "masks", "mask_source", "device"]):
        g = g.sort_values("ideal_density")
        ax.errorbar(g["ideal_density"], g["speedup"], yerr=_error_bars(g), marker="o", capsize=2,
                    label=f"{device} k={bs} B={batch} {masks} {source}")
    xs = sorted(ok["ideal_density"].unique()) if not ok.empty else [1.0]
    ax.plot(xs, [1 / x for x in xs], "k--", label="ideal (1 / density)")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="realized density of the work", ylabel="speedup over dense",
           title="speedup vs density")
    ax.legend(fontsize=7)
    return fig


def plot_speedup_vs_batch(k: pd.DataFrame):
    import matplotlib.pyplot as plt

    ok = k[(k["status"] == "ok") & (k["mask_source"] != "trained")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (bs, density, masks, source, device), g in ok.groupby(["block_size", "requested_density", "masks", "mask_source", "device"]):
        if g["batch"].nunique() < 2:
            continue
        g = g.sort_values("batch")
        ax.errorbar(g["batch"], g["speedup"], yerr=_error_bars(g), marker="o", capsize=2,
                    label=f"{device} k={bs} d={density:g} {masks} {source}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="speedup over dense", title="speedup vs batch size")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return fig


def plot_providers(run: Run):
    """Per sweep with peers: every provider's speedup over the dense baseline in each case, with its
    95% interval; a provider that did not run a case (or computed it wrong) has no point there."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    long = run.providers
    if long.empty or "speedup" not in long or not (long["role"] == "peer").any():
        return None
    sweeps = [s for s in long.loc[long["role"] == "peer", "sweep"].unique()]
    fig, axes = plt.subplots(len(sweeps), 1, figsize=(9, 3.6 * len(sweeps)), squeeze=False)
    cases = run.kernels.set_index("case_id")
    markers = "os^vDPX*"
    for ax, sweep in zip(axes[:, 0], sweeps):
        timed = long[(long["sweep"] == sweep) & (long["status"] == "ok")]
        ids = sorted(dict.fromkeys(timed["case_id"]), key=lambda i: _case_order(cases.loc[i]))
        labels = [_case_label(cases.loc[i]) for i in ids]
        names = list(dict.fromkeys(timed["provider"]))
        width = 0.8 / len(names)
        for n, (name, marker) in enumerate(zip(names, markers * len(names))):
            g = timed[timed["provider"] == name].set_index("case_id").reindex(ids)
            xs = [i + (n - (len(names) - 1) / 2) * width for i in range(len(ids))]
            ax.errorbar(xs, g["speedup"], yerr=_error_bars(g), fmt=marker, capsize=2, label=name)
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_xticks(range(len(ids)), labels, rotation=30, ha="right", fontsize=7)
        ax.set(yscale="log", ylabel="speedup over dense (x)", title=f"sweep {sweep}: every provider, checked first")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def _case_order(case: pd.Series) -> tuple:
    """Cases in numeric order: batch, block size, then density (or tau), then the masks."""
    density = case["tau"] if case["mask_source"] == "trained" else case["requested_density"]
    return case["batch"], case["block_size"], density, case["masks"], case["mask_source"]


def _case_label(case: pd.Series) -> str:
    density = f"tau {case['tau']:g}" if case["mask_source"] == "trained" else f"d {case['requested_density']:g}"
    return f"B{case['batch']} k{case['block_size']} {density} {case['masks']} {case['mask_source']}"


def plot_roofline(run: Run):
    """Per device, this machine's measured roofline (env.json's peaks) and every timed provider of every
    case on it: arithmetic intensity (useful FLOPs per needed byte) against achieved useful FLOP/s."""
    import matplotlib.pyplot as plt

    peaks, long = run.env.get("peaks") or {}, run.metrics
    if not peaks or long.empty:
        return None
    wide = long[long["metric"].isin(["throughput", "bandwidth"])].pivot_table(
        index=["case_id", "provider"], columns="metric", values="median").reset_index()
    if wide.empty or not {"throughput", "bandwidth"} <= set(wide.columns):
        return None
    wide = wide.merge(run.kernels[["case_id", "device"]], on="case_id")
    wide["intensity"] = wide["throughput"] * 1e3 / wide["bandwidth"]  # TFLOP/s over GB/s -> FLOP/byte
    devices = [d for d in peaks if (wide["device"] == d).any()]
    fig, axes = plt.subplots(1, len(devices), figsize=(7.5 * len(devices), 4.8), squeeze=False)
    for ax, device in zip(axes[0], devices):
        roof, points = peaks[device], wide[wide["device"] == device]
        memory = max(roof["copy_Bps"], roof["triad_Bps"])
        xs = [points["intensity"].min() / 2, points["intensity"].max() * 2]
        for dtype, flops in roof["gemm_flops"].items():
            knee = flops / memory
            ax.plot([xs[0], knee, max(xs[1], knee * 2)], [xs[0] * memory / 1e12, flops / 1e12, flops / 1e12], "k-",
                    lw=1, alpha=0.6)
            ax.annotate(f"{dtype} GEMM peak {flops / 1e9:.0f} GFLOP/s", (knee, flops / 1e12), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        for provider, g in points.groupby("provider", sort=False):
            ax.scatter(g["intensity"], g["throughput"], s=14, label=provider)
        ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (useful FLOPs per needed byte)",
               ylabel="achieved useful TFLOP/s",
               title=f"{device}: measured roofline (memory {memory / 1e9:.1f} GB/s, STREAM)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def roofline_line(run: Run) -> str:
    """This machine's measured roofline in one line, or "" for runs before peaks were measured."""
    parts = []
    for device, roof in (run.env.get("peaks") or {}).items():
        gemms = ", ".join(f"{d} GEMM {f / 1e9:.0f} GFLOP/s (n = {roof['gemm_size'][d]})" for d, f in roof["gemm_flops"].items())
        parts.append(f"{device}: {gemms}; STREAM copy {roof['copy_Bps'] / 1e9:.1f} GB/s, triad "
                     f"{roof['triad_Bps'] / 1e9:.1f} GB/s")
    return ("measured roofline: " + "; ".join(parts)) if parts else ""


def plot_pareto(models: pd.DataFrame, speeds: pd.DataFrame):
    import matplotlib.pyplot as plt

    m = model_summary(models).merge(speed_summary(models, speeds), on=["policy", "tau"])
    batches = sorted(m["batch"].unique())
    fig, axes = plt.subplots(1, len(batches), figsize=(5.5 * len(batches), 4.5), squeeze=False)
    for ax, b in zip(axes[0], batches):
        for policy, g in m[m["batch"] == b].groupby("policy"):
            yerr = _error_bars(g, "test_error", "test_error_low", "test_error_high")
            ax.errorbar(g["speedup"], 100 * g["test_error"], fmt="o", capsize=2, label=policy, xerr=_error_bars(g),
                        yerr=None if yerr is None else [100 * e.fillna(0) for e in yerr])
            for r in g.itertuples():
                ax.annotate(f"{r.tau:g}", (r.speedup, 100 * r.test_error), fontsize=7)
        ax.axvline(1.0, color="grey", lw=0.8)
        ax.set(xlabel=f"measured inference speedup over dense (batch {b})", ylabel="test error (%)",
               title=f"speed vs accuracy, batch {b}")
        ax.legend(fontsize=7)
    return fig


def write_report(run: Run, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    figures = {}
    if not run.kernels.empty and (run.kernels["status"] == "ok").any():
        figures["speedup_vs_density"] = plot_speedup_vs_density(run.kernels)
        figures["speedup_vs_batch"] = plot_speedup_vs_batch(run.kernels)
        if (providers := plot_providers(run)) is not None:
            figures["providers"] = providers
        if (roofline := plot_roofline(run)) is not None:
            figures["roofline"] = roofline
    if not run.model_speeds.empty:
        figures["pareto"] = plot_pareto(run.models, run.model_speeds)
    images = {}
    for name, fig in figures.items():
        images[name] = _figure_png(fig)
        (out / f"{name}.png").write_bytes(images[name])
        plt.close(fig)
    warning = load_warning(run)
    parts = [f"<h1>condbench run {html.escape(run.run_id)}</h1>",
             *([f"<div class='busy'><b>Busy machine.</b> {html.escape(warning)}</div>"] if warning else []),
             *([f"<p>{html.escape(wall[0].upper() + wall[1:])}.</p>"] if (wall := wall_time_line(run)) else []),
             *([f"<p>{html.escape(roof[0].upper() + roof[1:])}.</p>"] if (roof := roofline_line(run)) else []),
             "<h2>Machine</h2><pre>" + html.escape(pd.Series(run.env).to_string()) + "</pre>"]
    for name, png in images.items():
        parts.append(f"<h2>{name.replace('_', ' ')}</h2><img src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    if not run.kernels.empty:
        be = break_even(run.kernels)
        if not be.empty:
            parts.append("<h2>Where it pays off</h2>" + be.to_html(index=False, na_rep="never"))
        goals = check_goals(run.kernels)
        if not goals.empty:
            parts.append("<h2>Speed goals</h2>" + goals.to_html(index=False, float_format=lambda v: f"{v:.2f}"))
        parts.append("<h2>Kernel cases</h2>" + run.kernels.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    if not run.providers.empty:
        parts.append("<h2>Every provider of every case</h2><p>Speedup: the dense baseline's time over the "
                     "provider's (median of the per-round ratios, 95% interval). Each provider was checked in "
                     "float64 first; one that could not run a case, or computed it wrong, says why.</p>"
                     + run.providers.to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
    parts += profiles_html(run, out)
    if not run.models.empty:
        parts.append("<h2>Trained models</h2>" + model_summary(run.models).to_html(index=False, float_format=lambda v: f"{v:.4g}"))
        parts.append("<h2>Trained models, each seed</h2>" + run.models.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
        if not run.model_speeds.empty:
            parts.append("<h2>Trained models' timings, each seed and batch</h2>"
                         + run.model_speeds.to_html(index=False, float_format=lambda v: f"{v:.4g}"))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>condbench " + html.escape(run.run_id) +
            "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}"
            "td,th{border:1px solid #ccc;padding:2px 6px}"
            ".busy{background:#fdd;border:2px solid #c00;padding:0.6em 1em;margin:1em 0}</style></head><body>" + "\n".join(parts) + "</body></html>")
    (out / "index.html").write_text(page)
    return out / "index.html"


def run(args: argparse.Namespace) -> int:
    result = load_run(args.run_dir)
    out = writable_folder(args.out or args.run_dir / "report", "--out")
    write_tables(result)
    print_report(result)
    page = write_report(result, out)
    print(f"report: {page}")
    return 0
