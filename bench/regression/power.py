"""`python -m bench power SUITE --slowdown-env NAME=VALUE`: how often `bench continuous` catches a real
slowdown on this machine, and how often it cries wolf.

Each comparison runs three sides, `rounds` processes each, in rotating order: the base, the same code
again (unchanged) and the same code with the slowdown's environment (CONDBENCH_NATIVE=0: the torch-ops
fallback of the C++ kernel). Then it judges unchanged against base (a regression is a false alarm) and
slowed against base (a regression is a detection) exactly as `continuous` judges a change; the two
verdicts share the base's processes. --busy-core keeps one core busy with another process throughout,
as a neighbour would. Each comparison's rows (per case: change, interval, p-values) are appended to
comparisons.jsonl as it finishes, so the rates at any other threshold follow exactly from the file and
a killed study continues where it stopped (--out the same folder).
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import math
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

from bench.core.errors import UserError, writable_folder
from bench.machine.contention import busy_process
from bench.regression.continuous import Side, failures, judge, kernel_suite, measure_sides, pinned_suite, verdict
from bench.machine.fingerprint import fingerprint
from bench.store.results import append_row, read_rows
from bench.regression.revision import PROJECT_ROOT
from bench.store.run_folder import LOCK_FILE, owned, write_json_atomic

VARIANTS = ("unchanged", "slowed")
REPORTED_THRESHOLDS = (0.05, 0.10, 0.15, 0.20)


@dataclass(frozen=True)
class PowerOptions:
    """What `bench power` studies: the suite, what slows the slowed side, and how often."""

    suite: Path
    slowdown_env: tuple[tuple[str, str], ...]  # what makes the slowed side slow
    comparisons: int = 20
    rounds: int = 3
    threshold: float = 0.10
    busy_core: bool = False
    free_cores_only: bool = False
    out: Path | None = None  # the study's folder; an unfinished study there continues


def _settings(options: PowerOptions, suite_text: str) -> dict:
    return {"suite": suite_text, "slowdown_env": dict(options.slowdown_env), "rounds": options.rounds,
            "busy_core": options.busy_core}


def rates(rows: pd.DataFrame, threshold: float) -> dict:
    """Comparisons in which each variant was flagged (any case judged a regression or failed)."""
    out = {"threshold": threshold}
    for variant in VARIANTS:
        mine = rows[rows["variant"] == variant].copy()
        judged = mine.apply(lambda r: r["verdict"] if not isinstance(r["change"], float) or math.isnan(r["change"])
                            else verdict(r["change"], r["p_slower"], r["p_faster"], threshold), axis=1)
        flagged = mine.assign(verdict=judged).groupby("comparison")["verdict"].apply(
            lambda v: bool(v.isin(["regression", "failed"]).any()))
        out[f"{variant}_flagged"] = int(flagged.sum())
        out["comparisons"] = len(flagged)
    return out


def print_rates(rows: pd.DataFrame, chosen: float) -> list[dict]:
    table = Table(title="comparisons flagged: unchanged (false alarms) and slowed (detections)")
    for col in ("threshold", "false alarms", "detections"):
        table.add_column(col, justify="right")
    summary = [rates(rows, t) for t in sorted({*REPORTED_THRESHOLDS, chosen})]
    for r in summary:
        mark = " (chosen)" if r["threshold"] == chosen else ""
        table.add_row(f"{r['threshold']:.0%}{mark}", f"{r['unchanged_flagged']}/{r['comparisons']}",
                      f"{r['slowed_flagged']}/{r['comparisons']}")
    Console(width=120).print(table)
    changes = rows[rows["change"].notna()].groupby(["variant", "case_id"])["change"].describe()[["mean", "std", "min", "max"]]
    Console(width=220).print(changes.map(lambda v: f"{v:+.1%}").to_string())
    return summary


def run(options: PowerOptions) -> int:
    console = Console(stderr=True)
    text, suite = kernel_suite(options.suite)
    wanted = options.out or Path("results") / "power" / f"{suite.name}-{datetime.now():%Y%m%d-%H%M%S}"
    created = not wanted.exists()
    out = writable_folder(wanted, "--out").resolve()  # resolved: the processes run in the source folder
    hog = busy_process() if options.busy_core else None
    try:
        if hog is not None:
            time.sleep(1.0)  # the neighbour is running before the thread count is chosen
        with owned(out):
            with tempfile.TemporaryDirectory() as tmp:
                pinned = pinned_suite(text, suite, Path(tmp), console, options.free_cores_only).read_text()
            return _study(options, out, pinned, console)
    except UserError:
        # A suite that cannot run here leaves no study folder behind (only its lock would be in it).
        if created and {p.name for p in out.iterdir()} <= {LOCK_FILE}:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        if hog is not None:
            hog.kill()
            hog.wait()


def _study(options: PowerOptions, out: Path, pinned_suite_text: str, console: Console) -> int:
    settings = _settings(options, pinned_suite_text)
    settings_file = out / "settings.json"
    if settings_file.exists():
        if json.loads(settings_file.read_text()) != settings:
            raise UserError(f"--out {out}: holds a study with other settings (or another thread count); "
                            "use a new folder")
    else:
        (out / "suite.yaml").write_text(pinned_suite_text)
        write_json_atomic(settings_file, settings)
        write_json_atomic(out / "env.json", fingerprint(int(yaml.safe_load(settings["suite"])["threads"])))
    rows_file = out / "comparisons.jsonl"
    done = {r["comparison"] for r in read_rows(rows_file, "variant")}
    sides = [Side("base", PROJECT_ROOT), Side("unchanged", PROJECT_ROOT), Side("slowed", PROJECT_ROOT, dict(options.slowdown_env))]
    for comparison in range(options.comparisons):
        if comparison in done:
            continue
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="condbench-power-") as work:
            tables = measure_sides(sides, out / "suite.yaml", Path(work), options.rounds)
        flagged = {}
        for variant in VARIANTS:
            judged = judge(tables["base"], tables[variant], options.threshold)
            flagged[variant] = failures(judged) > 0
            for row in judged.to_dict("records"):
                append_row(rows_file, {"variant": variant, "comparison": comparison,
                                       **{k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}})
        console.print(f"comparison {comparison + 1}/{options.comparisons} ({time.monotonic() - started:.0f} s): "
                      f"unchanged {'FLAGGED' if flagged['unchanged'] else 'quiet'}, "
                      f"slowed {'flagged' if flagged['slowed'] else 'MISSED'}", highlight=False)
    rows = pd.DataFrame(read_rows(rows_file, "variant"))
    for column in ("change", "p_slower", "p_faster"):
        rows[column] = pd.to_numeric(rows.get(column), errors="coerce")
    summary = print_rates(rows, options.threshold)
    write_json_atomic(out / "summary.json", {"rates": summary})
    console.print(f"study: {out}")
    return 0
