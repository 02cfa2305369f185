"""The report's plots, each readable without the text: distinct colours and markers, legends outside
the data, log axes where one outlier would hide the rest."""

from __future__ import annotations

import io

import pandas as pd

from bench.core.flags import is_flagged
from bench.machine.peaks import memory_roof
from bench.analysis.models_summary import model_summary
from bench.store.results import Run

FLAGGED_LABEL = "flagged (busy, noisy or above the roofline)"

def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _error_bars(g: pd.DataFrame, value: str = "speedup", low: str = "speedup_ci_low",
                high: str = "speedup_ci_high"):
    """matplotlib's asymmetric error bars from a value and its interval's columns (None without them)."""
    if low not in g or high not in g:
        return None
    return [(g[value] - g[low]).clip(lower=0), (g[high] - g[value]).clip(lower=0)]


MARKERS = "os^DvP*Xhp"
SIDES = {"both": "input and output masks", "out": "output masks", "in": "input masks"}


def _panels_by_mask_side(ok: pd.DataFrame, width: float = 6.0):
    """One axes per masked side present ('both' first), sharing the y axis."""
    import matplotlib.pyplot as plt

    sides = [m for m in ("both", "out", "in") if (ok["masks"] == m).any()] or ["both"]
    fig, axes = plt.subplots(1, len(sides), figsize=(width * len(sides) + 2.2, 4.6), squeeze=False, sharey=True)
    return fig, list(zip(sides, axes[0]))


def _finish(fig, axes: list, legend_title: str, title: str):
    """One legend for all the panels, outside them on the right (it never covers data), and the title."""
    handles = {label: h for ax in axes for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 0.95),
               title=legend_title, title_fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def _ring_flagged(ax, rows: pd.DataFrame, x: str) -> None:
    """A red ring around each point from a flagged row: a plot hides no flag a table would show."""
    flagged = rows[[is_flagged(r) for r in rows.to_dict("records")]] if not rows.empty else rows
    if not flagged.empty:
        ax.scatter(flagged[x], flagged["speedup"], s=160, facecolors="none", edgecolors="red", linewidths=1.2,
                   zorder=6, label=FLAGGED_LABEL)


def _log_axes(ax) -> None:
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(ScalarFormatter())
        axis.set_minor_formatter(NullFormatter())


def plot_speedup_vs_density(k: pd.DataFrame):
    """Speedup against the work's realized density, one panel per masked side: colour = batch, marker =
    block size, dashed = clustered masks; the trained models' own masks as black crosses labelled by
    tau; the ideal 1 / density and the dense line for reference."""
    import matplotlib.pyplot as plt

    ok = k[k["status"] == "ok"]
    batches = sorted(ok["batch"].unique())
    colours = dict(zip(batches, plt.cm.viridis([i / max(1, len(batches) - 1) * 0.9 for i in range(len(batches))])))
    markers = dict(zip(sorted(ok["block_size"].unique()), MARKERS))
    fig, panels = _panels_by_mask_side(ok)
    for side, ax in panels:
        here = ok[ok["masks"] == side]
        synthetic = here[here["mask_source"] != "trained"]
        for (batch, bs, source), g in synthetic.groupby(["batch", "block_size", "mask_source"]):
            g = g.sort_values("ideal_density")
            ax.errorbar(g["ideal_density"], g["speedup"], yerr=_error_bars(g), marker=markers[bs], capsize=2,
                        color=colours[batch], ls="--" if source == "clustered" else "-",
                        label=f"B={batch}, k={bs}, {source}")
        trained = here[here["mask_source"] == "trained"]
        if not trained.empty:
            ax.scatter(trained["ideal_density"], trained["speedup"], marker="x", color="black", s=50, zorder=5,
                       label="trained models' masks (B, tau)")
            for r in trained.itertuples():
                ax.annotate(f"B={r.batch} τ={float(r.tau):g}", (r.ideal_density, r.speedup), fontsize=7,
                            xytext=(4, -10), textcoords="offset points")
        _ring_flagged(ax, here, "ideal_density")
        xs = sorted(d for d in here["ideal_density"].unique() if d > 0) or [1.0]  # all-off masks have no ideal
        ax.plot([min(xs) / 1.3, 1.0], [1.3 / min(xs), 1.0], "k:", lw=1, label="ideal: 1 / density")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.annotate("dense", (min(xs) / 1.3, 1.0), fontsize=7, color="grey", xytext=(2, 3), textcoords="offset points")
        ax.set(xscale="log", yscale="log", xlabel="density of the work (share of the dense FLOPs needed)",
               title=f"{SIDES.get(side, side)}")
        _log_axes(ax)
    panels[0][1].set_ylabel("speedup over the best dense path (x, log)")
    return _finish(fig, [ax for _, ax in panels], "colour: batch; marker: block size\ndashed: clustered masks",
                   "speedup against density: above the dotted line beats the FLOP count, above 1 beats dense")


def plot_speedup_vs_batch(k: pd.DataFrame):
    """Speedup against batch, one panel per masked side: colour = requested density, marker = block
    size, dashed = clustered masks."""
    import matplotlib.pyplot as plt

    ok = k[(k["status"] == "ok") & (k["mask_source"] != "trained")]
    densities = sorted(ok["requested_density"].unique())
    colours = dict(zip(densities, plt.cm.plasma([i / max(1, len(densities) - 1) * 0.85 for i in range(len(densities))])))
    markers = dict(zip(sorted(ok["block_size"].unique()), MARKERS))
    fig, panels = _panels_by_mask_side(ok, width=5.0)
    for side, ax in panels:
        for (density, bs, source), g in ok[ok["masks"] == side].groupby(["requested_density", "block_size", "mask_source"]):
            g = g.sort_values("batch")
            ax.errorbar(g["batch"], g["speedup"], yerr=_error_bars(g), marker=markers[bs], capsize=2,
                        color=colours[density], ls="--" if source == "clustered" else "-",
                        label=f"d={density:g}, k={bs}, {source}")
        _ring_flagged(ax, ok[ok["masks"] == side], "batch")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set(xscale="log", yscale="log", xlabel="batch size", title=SIDES.get(side, side))
        _log_axes(ax)
    panels[0][1].set_ylabel("speedup over the best dense path (x, log)")
    return _finish(fig, [ax for _, ax in panels], "colour: density asked; marker: block size\ndashed: clustered masks",
                   "speedup against batch size (above 1: sparse beats dense)")


def plot_providers(run: Run):
    """Per sweep with peers: every provider's speedup over the case's baseline (its fastest dense path) in each case, with its
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
        ax.set(yscale="log", ylabel="speedup over the best dense path (x)", title=f"sweep {sweep}: every provider, checked first")
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
        memory = memory_roof(roof, "cold")
        xs = [points["intensity"].min() / 2, points["intensity"].max() * 2]
        for dtype, flops in roof["gemm_flops"].items():
            knee = flops / memory
            ax.plot([xs[0], knee, max(xs[1], knee * 2)], [xs[0] * memory / 1e12, flops / 1e12, flops / 1e12], "k-",
                    lw=1, alpha=0.6)
            ax.annotate(f"{dtype} GEMM peak {flops / 1e9:.0f} GFLOP/s", (knee, flops / 1e12), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        cached = memory_roof(roof, "warm")
        warm = "cache" in run.kernels and ((run.kernels["device"] == device) & (run.kernels["cache"] == "warm")).any()
        if warm and cached > memory:  # the roof of the rows timed warm: their bytes may come from the cache
            top = max(roof["gemm_flops"].values())
            ax.plot([xs[0], top / cached], [xs[0] * cached / 1e12, top / 1e12], "k--", lw=1, alpha=0.5,
                    label=f"last-level cache {cached / 1e9:.0f} GB/s (warm rows' roof)")
        for provider, g in points.groupby("provider", sort=False):
            ax.scatter(g["intensity"], g["throughput"], s=14, label=provider)
        ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (useful FLOPs per needed byte)",
               ylabel="achieved useful TFLOP/s",
               title=f"{device}: measured roofline (memory {memory / 1e9:.1f} GB/s, STREAM)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def pareto_front(points: pd.DataFrame, x: str = "speedup", faster: str = "higher") -> pd.DataFrame:
    """The models no other beats on both counts (faster and no less accurate, or as fast and more
    accurate), ordered from slowest to fastest. `x` is a speedup (higher is faster) or, with
    faster="lower", a time."""
    front = []
    sign = 1 if faster == "higher" else -1
    ranked = points.assign(_speed=sign * points[x]).sort_values(["_speed", "test_error"], ascending=[False, True])
    for r in ranked.itertuples():
        if not front or r.test_error < front[-1].test_error:
            front.append(r)
    return pd.DataFrame(front[::-1]).drop(columns=["Index", "_speed"], errors="ignore")


def plot_pareto(models: pd.DataFrame, times: pd.DataFrame):
    """Test error against time per batch (each model's figure of record: its fastest correct provider),
    one panel per batch, log axes; the dense frontier (a dense net per width) as a line through its
    widths, each CondNet a marker per policy labelled by tau, the Pareto front of all of them as a step
    line. Down and left is better: a CondNet left of the frontier line at its error beats every dense
    width there."""
    import matplotlib.pyplot as plt

    from bench.analysis.frontier import dense_frontier, figures_of_record

    m = model_summary(models)
    records = figures_of_record(times).merge(models[["name", "policy", "tau", "hidden"]], on="name")
    timed = m.merge(records.groupby(["policy", "tau", "hidden", "batch"], as_index=False)["median_s"].min(),
                    on=["policy", "tau", "hidden"])
    frontier = dense_frontier(models, times)
    batches = sorted(timed["batch"].unique())
    cond = timed[timed["policy"] != "dense"]
    policies = list(dict.fromkeys(cond["policy"]))
    colours = dict(zip(policies, plt.cm.tab10(range(1, len(policies) + 1))))
    markers = dict(zip(policies, MARKERS[1:]))
    fig, axes = plt.subplots(1, len(batches), figsize=(5.6 * len(batches) + 2.2, 4.8), squeeze=False, sharey=True)
    for ax, b in zip(axes[0], batches):
        here = timed[timed["batch"] == b]
        line = frontier[frontier["batch"] == b] if not frontier.empty else frontier
        if not line.empty:
            ax.plot(1e3 * line["median_s"], 100 * line["test_error"], "o-", color="black", ms=4, lw=1.2,
                    label="dense frontier (one net per width)")
            for r in line.itertuples():
                ax.annotate(f"w={r.width}", (1e3 * r.median_s, 100 * r.test_error), fontsize=7, color="black",
                            xytext=(4, -9), textcoords="offset points")
        for policy, g in cond[cond["batch"] == b].groupby("policy", sort=False):
            yerr = _error_bars(g, "test_error", "test_error_low", "test_error_high")
            ax.errorbar(1e3 * g["median_s"], 100 * g["test_error"], fmt=markers[policy], color=colours[policy],
                        capsize=2, ms=6, label=policy, yerr=None if yerr is None else [100 * e.fillna(0) for e in yerr])
            for n, r in enumerate(g.itertuples()):
                ax.annotate(f"τ={r.tau:g}", (1e3 * r.median_s, 100 * r.test_error), fontsize=7, color=colours[policy],
                            xytext=(5, 4 if n % 2 == 0 else -10), textcoords="offset points")
        front = pareto_front(here[["median_s", "test_error"]], "median_s", faster="lower")
        ax.step(1e3 * front["median_s"], 100 * front["test_error"], where="post", color="grey", lw=1, alpha=0.6,
                label="Pareto front of all models")
        ax.set(xscale="log", yscale="log", xlabel=f"ms per batch of {b}, fastest correct provider (log)",
               title=f"batch {b}")
        ax.set_ylim(bottom=max(0.3, 0.5 * 100 * here["test_error"].min()))
        _log_axes(ax)
    axes[0][0].set_ylabel("test error (%, log)")
    return _finish(fig, list(axes[0]), "τ: the share of blocks\na policy aims to keep; w: a dense net's width",
                   "time against accuracy: down and left is better; a CondNet left of the dense frontier beats "
                   "every dense width as accurate")
