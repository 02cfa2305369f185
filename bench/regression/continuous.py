"""`python -m bench continuous SUITE --base REV`: is the working tree slower than a git revision?

A baseline measured on another day differs from today's run by more than the regressions worth
catching (neighbours, clock, which core the weights landed near). So both sides are measured now, on
this machine, in alternating processes (base head head base base head ...), as asv's `continuous`
does: drift hits both alike. Each process runs the whole suite and gives, per kernel case, one median
speedup (dense / sparse, interleaved rounds); the processes are the replicates. A case regresses when
the head's speedup is below the base's by more than the threshold AND a one-sided Welch t-test on the
processes' log speedups says the drop is not noise (p < ALPHA).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from bench.plan.cases import check_runnable, kernel_cases
from bench.core.errors import UserError, last_line, writable_folder
from bench.machine.contention import describe, free_cores, measure_load
from bench.store.results import load_run
from bench.regression.revision import PROJECT_ROOT, exported_revision
from bench.plan.suite import Suite, parse_suite, suite_text

ALPHA = 0.01
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Side:
    """One way of running the suite: a source tree and the environment its processes get."""

    name: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)


def process_order(sides: list[str], rounds: int) -> list[str]:
    """Every side once per round, the order rotated from round to round (A B, B A, A B; or A B C,
    B C A, C A B): no side always runs first after a pause or last before the next round."""
    return [name for r in range(rounds) for name in sides[r % len(sides):] + sides[: r % len(sides)]]


def kernel_suite(suite_file: Path) -> tuple[str, Suite]:
    """The suite's text and its parsed form, refused (one line) unless it has a kernel sweep."""
    text = suite_text(suite_file)
    suite = parse_suite(text, str(suite_file))
    if not suite.kernels:
        raise UserError(f"{suite_file}: has no kernel sweep; the check compares kernel speedups")
    # What this machine cannot run is said now, before any folder or process: not by each child run.
    check_runnable(kernel_cases(suite), str(suite_file), suite.threads)
    return text, suite


def pinned_suite(text: str, suite: Suite, folder: Path, console: Console, free_cores_only: bool = False) -> Path:
    """The suite as every process runs it, written into folder, with one thread count for all: the
    suite's, or with free_cores_only the cores other processes leave free now. The suite's is the
    default: a regression that shows only with several threads (the torch-ops fallback loses its 20%
    to per-op fork/joins; on one thread it is as fast as the C++ kernel) is invisible on one."""
    load = measure_load(1.0)
    threads = min(suite.threads, free_cores(load)) if free_cores_only else suite.threads
    if load.flags(suite.threads):
        console.print(f"[yellow]note[/yellow]: {describe(load, suite.threads)}; every process runs {threads} "
                      f"thread(s){' (--free-cores-only)' if threads < suite.threads else ''}", highlight=False)
    data = yaml.safe_load(text)
    data["threads"] = threads
    pinned = folder / "suite.yaml"
    pinned.write_text(yaml.safe_dump(data, sort_keys=False))
    return pinned


def run_process(side: Side, suite_file: Path, results: Path) -> pd.DataFrame:
    """One `bench run` of the suite by the side's own code, in a process of its own; its kernel rows."""
    runs = results / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    env = {**os.environ, **side.env, "PYTHONPATH": str(side.root)}
    done = subprocess.run([sys.executable, "-m", "bench", "run", str(suite_file), "--results", str(results), "--quiet"],
                          cwd=side.root, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise UserError(f"{side.name}: `bench run` failed: {last_line(done.stderr, f'exit code {done.returncode}')}")
    new = sorted(f for f in set(runs.iterdir()) - before if not f.name.startswith("."))
    if len(new) != 1:
        raise UserError(f"{side.name}: `bench run` left {len(new)} new run folders in {runs}, expected one")
    return load_run(new[0]).kernels


def measure_sides(sides: list[Side], suite_file: Path, work: Path, rounds: int,
                  on_process: Callable[[str, float], None] | None = None) -> dict[str, list[pd.DataFrame]]:
    """Each side's kernel tables, one per process, the sides' processes alternating; on_process gets each
    finished process's side and seconds."""
    by_name = {side.name: side for side in sides}
    tables: dict[str, list[pd.DataFrame]] = {side.name: [] for side in sides}
    for name in process_order(list(by_name), rounds):
        started = time.monotonic()
        tables[name].append(run_process(by_name[name], suite_file, work / name))
        if on_process is not None:
            on_process(name, time.monotonic() - started)
    return tables


def _per_case(tables: list[pd.DataFrame]) -> dict[str, list[float]]:
    """case id -> each process's speedup (NaN where the case did not run ok)."""
    cases: dict[str, list[float]] = {}
    for table in tables:
        for row in table.to_dict("records"):
            ok = row.get("status") == "ok"
            cases.setdefault(row["case_id"], []).append(float(row["speedup"]) if ok else math.nan)
    return cases


def _welch(head: np.ndarray, base: np.ndarray) -> tuple[float, float, float, float]:
    """(p that head is slower, p that it is faster, interval low, high) for the difference of mean logs."""
    from scipy.stats import ttest_ind

    diff = head.mean() - base.mean()
    if np.ptp(head) == 0 and np.ptp(base) == 0:  # no spread at all: the difference is what it is
        return float(diff >= 0), float(diff <= 0), diff, diff
    less = ttest_ind(head, base, equal_var=False, alternative="less")
    greater = ttest_ind(head, base, equal_var=False, alternative="greater")
    interval = ttest_ind(head, base, equal_var=False).confidence_interval(CONFIDENCE)
    return float(less.pvalue), float(greater.pvalue), float(interval.low), float(interval.high)


def verdict(change: float, p_slower: float, p_faster: float, threshold: float) -> str:
    if change < -threshold and p_slower < ALPHA:
        return "regression"
    if change > threshold and p_faster < ALPHA:
        return "faster"
    return "same"


def judge(base: list[pd.DataFrame], head: list[pd.DataFrame], threshold: float) -> pd.DataFrame:
    """One row per case: both sides' median speedups, the change of the head against the base with its
    95% interval, the one-sided p-values and the verdict."""
    base_cases, head_cases = _per_case(base), _per_case(head)
    rows = []
    for case_id in list(base_cases) + [c for c in head_cases if c not in base_cases]:
        b, h = np.array(base_cases.get(case_id, [])), np.array(head_cases.get(case_id, []))
        row = {"case_id": case_id, "base_processes": len(b), "head_processes": len(h),
               "base_speedup": float(np.nanmedian(b)) if np.isfinite(b).any() else math.nan,
               "head_speedup": float(np.nanmedian(h)) if np.isfinite(h).any() else math.nan}
        if len(b) == 0 or len(h) == 0:
            row["verdict"] = "head only" if len(b) == 0 else "base only"
        elif not np.isfinite(h).all():
            row["verdict"] = "failed" if np.isfinite(b).all() else "still failing"
        elif not np.isfinite(b).all():
            row["verdict"] = "fixed"
        else:
            p_slower, p_faster, low, high = _welch(np.log(h), np.log(b))
            change = math.exp(np.log(h).mean() - np.log(b).mean()) - 1.0
            row.update(change=change, change_low=math.exp(low) - 1.0, change_high=math.exp(high) - 1.0,
                       p_slower=p_slower, p_faster=p_faster,
                       verdict=verdict(change, p_slower, p_faster, threshold))
        rows.append(row)
    return pd.DataFrame(rows)


def failures(judged: pd.DataFrame) -> int:
    return int(judged["verdict"].isin(["regression", "failed"]).sum())


def print_judged(judged: pd.DataFrame, title: str) -> None:
    colors = {"regression": "red", "failed": "red", "faster": "green", "fixed": "green"}
    table = Table(title=title)
    for col in ("case", "base x", "head x", "change", "95% interval", "p", "verdict"):
        table.add_column(col, justify="right")

    def fmt(value, spec: str) -> str:
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)

    for r in judged.to_dict("records"):
        color = colors.get(r["verdict"], "white")
        low, high = r.get("change_low", math.nan), r.get("change_high", math.nan)
        interval = "" if math.isnan(low) else f"[{low:+.1%}, {high:+.1%}]"
        p = r.get("p_slower") if r.get("change", 0.0) < 0 else r.get("p_faster")
        table.add_row(r["case_id"], fmt(r["base_speedup"], ".2f"), fmt(r["head_speedup"], ".2f"),
                      fmt(r.get("change"), "+.1%"), interval, fmt(p, ".3f"), f"[{color}]{r['verdict']}[/{color}]")
    Console(width=220).print(table)


@dataclass(frozen=True)
class ContinuousOptions:
    """What `bench continuous` compares: the suite, the base revision, and how."""

    suite: Path
    base: str
    rounds: int = 3
    threshold: float = 0.10
    head_env: tuple[tuple[str, str], ...] = ()  # set in the head's processes only
    free_cores_only: bool = False
    out: Path | None = None  # keep the runs and the verdicts here


def run(options: ContinuousOptions) -> int:
    console = Console(stderr=True)
    text, suite = kernel_suite(options.suite)
    with exported_revision(options.base) as (base_root, commit), tempfile.TemporaryDirectory(prefix="condbench-ci-") as tmp:
        # Resolved: the processes run in the sides' source folders.
        work = (writable_folder(options.out, "--out") if options.out is not None else Path(tmp)).resolve()
        suite_file = pinned_suite(text, suite, work, console, options.free_cores_only)
        sides = [Side("base", base_root), Side("head", PROJECT_ROOT, dict(options.head_env))]
        total = 2 * options.rounds
        count = iter(range(1, total + 1))
        tables = measure_sides(sides, suite_file, work, options.rounds, lambda name, seconds: console.print(
            f"process {next(count)}/{total}: {name} ({seconds:.0f} s)", highlight=False))
        judged = judge(tables["base"], tables["head"], options.threshold)
        judged.to_csv(work / "continuous.csv", index=False)
    print_judged(judged, f"speedup: working tree vs {options.base} ({commit[:12]}), {options.rounds} processes each, "
                         f"threshold {options.threshold:.0%}, p < {ALPHA}")
    contended = sum(contended_rows(t) for side in tables.values() for t in side)
    if contended:
        console.print(f"[yellow]note[/yellow]: {contended} timed case(s) saw other processes on this run's CPUs; "
                      "both sides alternate, but the noise widens the intervals", highlight=False)
    bad = failures(judged)
    print(f"{bad} regression(s) in {len(judged)} compared case(s)")
    return 1 if bad else 0


def contended_rows(table: pd.DataFrame) -> int:
    return int(table["contended"].fillna(False).astype(bool).sum()) if "contended" in table else 0
