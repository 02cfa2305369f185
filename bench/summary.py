"""A run's answer in two tables, as data: the best block size per batch and density, and the fastest
model within each test-error budget. The terminal report, the HTML page and the README's results section
(`python -m bench summary RUN --markdown`) all render these."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from bench.break_even import break_even, describe
from bench.goals import check_goals
from bench.models_summary import model_summary, speed_summary
from bench.results import Run, load_run

ERROR_BUDGETS = (0.0, 0.005, 0.01, 0.02, math.inf)  # the test error's rise over the dense net's, as a fraction


def best_configurations(kernels: pd.DataFrame) -> pd.DataFrame:
    """Per batch, masked side and mask source (synthetic masks), and per requested density: the fastest
    block size, with its speedup, interval and ideal (1 / work density)."""
    if kernels.empty:
        return pd.DataFrame()
    ok = kernels[(kernels["status"] == "ok") & (kernels["mask_source"] != "trained")
                 & kernels["requested_density"].notna()]
    if ok.empty:
        return pd.DataFrame()
    best = ok.loc[ok.groupby(["batch", "masks", "mask_source", "requested_density"])["speedup"].idxmax()]
    best = best.assign(ideal=1.0 / best["ideal_density"])
    for column in ("speedup_ci_low", "speedup_ci_high"):  # runs written before intervals were kept
        best[column] = pd.to_numeric(best[column], errors="coerce") if column in best else math.nan
    columns = ["batch", "masks", "mask_source", "requested_density", "block_size", "speedup", "speedup_ci_low",
               "speedup_ci_high", "ideal"]
    return best[[c for c in columns if c in best]].sort_values(["batch", "masks", "mask_source", "requested_density"],
                                                                ascending=[True, True, True, False])


def fastest_models(models: pd.DataFrame, speeds: pd.DataFrame) -> pd.DataFrame:
    """Per error budget (the mean test error at most this far above the dense net's, paired per seed) and
    batch timed: the model of highest median speedup. Models whose check failed are left out."""
    summary = model_summary(models)
    if summary.empty or speeds.empty or "error_change" not in summary:
        return pd.DataFrame()
    timed = summary.merge(speed_summary(models, speeds), on=["policy", "tau"])
    failed = timed["error"].apply(lambda e: isinstance(e, str)) if "error" in timed else False
    timed = timed[timed["error_change"].notna() & ~failed]
    rows = []
    for budget in ERROR_BUDGETS:
        within = timed[timed["error_change"] <= budget + 1e-12]
        for batch, g in within.groupby("batch"):
            r = g.loc[g["speedup"].idxmax()]
            rows.append({"budget": budget, "batch": batch, "policy": r["policy"], "tau": r["tau"],
                         "speedup": r["speedup"], "speedup_ci_low": r["speedup_ci_low"],
                         "speedup_ci_high": r["speedup_ci_high"], "error_change": r["error_change"]})
    return pd.DataFrame(rows)


def budget_label(budget: float) -> str:
    return "any" if budget == math.inf else f"<= +{100 * budget:g} points"


def best_grid(best: pd.DataFrame) -> tuple[list[float], list[tuple[tuple, list[dict | None]]]]:
    """best_configurations as a grid: the densities (descending), and per (batch, masks, mask source) the
    winning row at each density, or None where that density was not measured."""
    densities = sorted(best["requested_density"].unique(), reverse=True)
    rows = []
    for key, g in best.groupby(["batch", "masks", "mask_source"], sort=False):
        by_density = {r["requested_density"]: r for r in g.to_dict("records")}
        rows.append((key, [by_density.get(d) for d in densities]))
    return densities, rows


NEAR_IDEAL = 0.85  # a speedup at this fraction of its ideal or above is shown as near it


def speed_band(speedup: float, ideal: float) -> str:
    """How a report colours a speedup: "slow" (below dense), "near-ideal", or "" (in between)."""
    if speedup < 1.0:
        return "slow"
    return "near-ideal" if speedup >= NEAR_IDEAL * ideal else ""


def no_interval(low, high) -> bool:
    """True where a speedup has no interval: NaN, or None in runs written before intervals were kept."""
    return any(v is None or v != v for v in (low, high))


def speedup_text(speedup: float, low: float = math.nan, high: float = math.nan) -> str:
    """'2.44 [2.31, 2.58]', or '2.44' without an interval."""
    return f"{speedup:.2f}" + ("" if no_interval(low, high) else f" [{low:.2f}, {high:.2f}]")


def markdown_summary(run: Run, source: str) -> str:
    """The README's results section for `run` (found at `source`, a path relative to the repository):
    the two answer tables, the models, the goals and the break-even densities, every number from the
    run's own files."""
    env = run.env
    machine = env.get("cpu_model") or "?"
    if env.get("cpu_capability"):
        machine += f" ({env['cpu_capability']})"
    lines = [f"From `{source}/` (`python -m bench summary {source} --markdown` writes this section): {machine}, "
             f"{env.get('torch_threads')} threads, torch {env.get('torch')}; medians of interleaved rounds, "
             "[95% intervals]; x = speedup over dense.", ""]
    best = best_configurations(run.kernels)
    if not best.empty:
        densities, grid = best_grid(best)
        lines += ["**The best block size per batch and density** (one layer, 2048 x 2048, fp32; both masks at "
                  "small batch, output masks at large batch):", "",
                  "| B | masks | source | " + " | ".join(f"d = {d:g}" for d in densities) + " |",
                  "|---:|---|---|" + "---:|" * len(densities)]
        for (batch, masks, src), cells in grid:
            lines.append(f"| {batch} | {masks} | {src} | " + " | ".join(
                "" if r is None else f"{speedup_text(r['speedup'], r['speedup_ci_low'], r['speedup_ci_high'])} "
                                     f"(k {r['block_size']})" for r in cells) + " |")
        lines.append("")
    fastest = fastest_models(run.models, run.model_speeds)
    if not fastest.empty:
        lines += ["**The fastest trained model within each test-error budget** (digits, whole inference against "
                  "the dense net, policies included):", "",
                  "| test error vs dense | B | fastest model | x | its error vs dense |", "|---|---:|---|---:|---:|"]
        for r in fastest.to_dict("records"):
            lines.append(f"| {budget_label(r['budget'])} | {r['batch']} | {r['policy']} τ = {r['tau']:g} | "
                         f"{speedup_text(r['speedup'], r['speedup_ci_low'], r['speedup_ci_high'])} | "
                         f"{100 * r['error_change']:+.2f} points |")
        lines.append("")
    goals = check_goals(run.kernels)
    if not goals.empty:
        lines += ["**Speed goals** (`bench/goals.py`; fraction of the ideal speedup 1 / density):", "",
                  "| goal | target | measured | verdict |", "|---|---:|---:|---|"]
        for r in goals.to_dict("records"):
            verdict = "met" if r["met"] else f"missed by {r['short_by']:.2f}"
            lines.append(f"| {r['goal']} | {r['target']:.2f} | {r['measured']:.2f} | {verdict} |")
        lines.append("")
    be = break_even(run.kernels)
    if not be.empty:
        lines += ["**Break-even density** (where sparse stops beating dense; > d: it won at every density "
                  "measured, up to d):", "", "| B | k | masks | source | break-even |", "|---:|---:|---|---|---|"]
        for r in be.sort_values(["batch", "block_size"]).to_dict("records"):
            lines.append(f"| {r['batch']} | {r['block_size']} | {r['masks']} | {r['mask_source']} | {describe(r)} |")
        lines.append("")
    return "\n".join(lines)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("summary", help="a run's answer as markdown (the README's results section)")
    p.add_argument("run_dir", type=Path, help="a run folder, results/runs/<run id>")
    p.add_argument("--markdown", action="store_true", help="print markdown (the only format for now)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(markdown_summary(load_run(args.run_dir), args.run_dir.as_posix().rstrip("/")))
    return 0
