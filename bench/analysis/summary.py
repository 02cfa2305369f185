"""A run's answer in two tables, as data: the best block size per batch and density, and the fastest
model within each test-error budget. The terminal report, the HTML page and the README's results section
(`python -m bench summary RUN --markdown`) all render these."""

from __future__ import annotations

import math

import pandas as pd

from bench.analysis.frontier import fastest_within_budget, iso_accuracy, label
from bench.core.flags import flag_notes, is_flagged
from bench.store.results import Run


def best_configurations(kernels: pd.DataFrame) -> pd.DataFrame:
    """Per batch, masked side and mask source (synthetic masks), and per requested density: the fastest
    block size, with its speedup, interval and ideal (1 / work density)."""
    if kernels.empty:
        return pd.DataFrame()
    ok = kernels[(kernels["status"] == "ok") & (kernels["mask_source"] != "trained")
                 & kernels["requested_density"].notna()]
    if ok.empty:
        return pd.DataFrame()
    # The fastest clean row of each cell; a flagged one only where every row of the cell is flagged, and
    # a clean one chosen over a faster flagged one says so (passed_over).
    clean = pd.Series([not is_flagged(r) for r in ok.to_dict("records")], index=ok.index)
    ok = ok.assign(clean=clean)
    cell = ["batch", "masks", "mask_source", "requested_density"]
    fastest = ok.groupby(cell)["speedup"].transform("max")
    any_clean = ok.groupby(cell)["clean"].transform("any")
    candidates = ok[ok["clean"] | ~any_clean]
    best = candidates.loc[candidates.groupby(cell)["speedup"].idxmax()]
    best = best.assign(ideal=1.0 / best["ideal_density"], passed_over=best["speedup"] < fastest[best.index])
    for column in ("speedup_ci_low", "speedup_ci_high"):  # runs written before intervals were kept
        best[column] = pd.to_numeric(best[column], errors="coerce") if column in best else math.nan
    columns = ["batch", "masks", "mask_source", "requested_density", "block_size", "speedup", "speedup_ci_low",
               "speedup_ci_high", "ideal", "load_flags", "passed_over", "device", "dtype", "in_features", "out_features"]
    return best[[c for c in columns if c in best]].sort_values(["batch", "masks", "mask_source", "requested_density"],
                                                                ascending=[True, True, True, False])


def budget_label(budget: float) -> str:
    return "any" if budget == math.inf else f"<= +{100 * budget:g} points"


def number_text(value, spec: str = ".2f") -> str:
    """A figure, or blank where the row has none (a row from before it was measured, a failed case)."""
    return "" if value is None or value != value else format(value, spec)


def ms_text(seconds: float, low: float = math.nan, high: float = math.nan) -> str:
    """A time per batch in ms, 3 significant digits ('0.0074', '1.68', '37.8')."""
    def fmt(v: float) -> str:
        return f"{1e3 * v:.3g}"
    return fmt(seconds) + ("" if no_interval(low, high) else f" [{fmt(low)}, {fmt(high)}]")


def model_answers(run: Run) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The models' answer, as data: the fastest model of all per error budget, each CondNet against the
    fastest dense net as accurate (bench.analysis.frontier), and each timed family's speedup over its same-shape
    dense twin by (policy, tau, hidden, batch)."""
    if run.models.empty:
        return pd.DataFrame(), pd.DataFrame(), {}
    twin = {}
    if not run.model_speeds.empty:
        merged = run.model_speeds.merge(run.models[["name", "policy", "tau", "hidden"]], on="name")
        twin = {(r["policy"], r["tau"], r["hidden"], r["batch"]): r for r in merged.to_dict("records")}
    return fastest_within_budget(run.models, run.model_times), iso_accuracy(run.models, run.model_times), twin


def iso_text(r: dict) -> str:
    """An iso-accuracy row's speedup: '0.09 [0.08, 0.10]' (unpaired: '... unpaired'), or the verdict."""
    if r.get("verdict") != "compared":
        return str(r.get("verdict"))
    return speedup_text(r["speedup"], r["speedup_low"], r["speedup_high"]) + ("" if r.get("paired") else " unpaired")


def goal_lines(iso: pd.DataFrame) -> list[str]:
    """The moonshot, per batch: is some CondNet faster than every dense width under every provider at
    equal accuracy (its iso-accuracy speedup's interval above 1)? Else how far off the closest is."""
    lines = []
    if iso.empty:
        return lines
    for batch, g in iso.groupby("batch"):
        compared = g[g["verdict"] == "compared"]
        if compared.empty:
            lines.append(f"batch {batch}: no CondNet has a dense net as accurate to be compared with")
            continue
        best = compared.loc[compared["speedup"].idxmax()]
        name = label(best["policy"], best["tau"], best["hidden"])
        x = speedup_text(best["speedup"], best["speedup_low"], best["speedup_high"])
        noise = best.get("within_noise_speedup", math.nan)
        caveat = ""
        if noise == noise and noise < 1:
            caveat = (f", but dense w = {str(best['within_noise_hidden']).split('x')[0]} "
                      f"({best['within_noise_provider']}), {100 * best['within_noise_change']:+.2f} points, "
                      f"an error the test sets cannot tell apart from the CondNet's, runs faster "
                      f"(the CondNet {noise:.2f}x of its speed)")
        if best["speedup_low"] > 1 and not caveat:
            lines.append(f"batch {batch}: met, {name} runs {x}x the fastest dense net as accurate")
        elif best["speedup_low"] > 1:
            lines.append(f"batch {batch}: met by the rule, not beyond the noise: {name} runs {x}x the fastest "
                         f"dense net as accurate{caveat}")
        elif best["speedup"] > 1:
            lines.append(f"batch {batch}: not shown, {name} runs {x}x the fastest dense net as accurate "
                         f"(its interval reaches 1){caveat}")
        else:
            lines.append(f"batch {batch}: missed; the closest, {name}, runs {x}x the fastest dense net as accurate "
                         f"({1 / best['speedup']:.1f}x slower)")
    return lines


def grid_notes(grid: list[tuple[tuple, list[dict | None]]]) -> list[str]:
    """The notes for the flag marks of a best_grid's cells."""
    return flag_notes(r for _, cells in grid for r in cells)


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
