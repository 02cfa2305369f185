"""`python -m bench compare BASELINE RUN`: speed regressions, judged on speedup ratios.

Absolute times are not compared: CI boxes are noisy and differ from each other, while the ratio of
sparse to dense measured interleaved in one run is stable. A case regresses only when its speedup fell
by more than the threshold (default 10%) AND by more than the noise: twice the pooled spread of the
two runs' per-round speedups (IQR / 1.349 estimates a standard deviation).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from bench.cli_common import UserError, path_arg
from bench.results import load_run

NOISE_SIGMAS = 2.0


REQUIRED_COLUMNS = ("case_id", "status", "speedup", "speedup_iqr")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: is empty, not a results CSV") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc).splitlines()[0]
        raise UserError(f"{path}: not a results CSV ({reason})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def _speedups(path: Path) -> pd.DataFrame:
    """A run folder or a baseline CSV (as committed under results/baselines/), checked: one row per case,
    a status per row and a numeric speedup and spread for every ok row."""
    table = _read_csv(path) if path.is_file() else load_run(path).kernels
    if table.empty:
        raise UserError(f"{path}: holds no kernel cases")
    missing = [c for c in REQUIRED_COLUMNS if c not in table]
    if missing:
        raise UserError(f"{path}: lacks the column(s) {', '.join(missing)} of a results table")
    duplicated = table["case_id"][table["case_id"].duplicated()]
    if len(duplicated):
        raise UserError(f"{path}: case {duplicated.iloc[0]} appears more than once")
    table = table.assign(status=table["status"].astype(str))
    ok = table["status"] == "ok"
    for column in ("speedup", "speedup_iqr"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = ok & ~(values.notna() & (values >= 0) & values.abs().lt(float("inf")))
        if bad.any():
            raise UserError(f"{path}: case {table['case_id'][bad].iloc[0]} has {column} "
                            f"{table[column][bad].iloc[0]!r}, not a finite number >= 0")
        table[column] = values
    if (ok & (table["speedup"] == 0)).any():
        raise UserError(f"{path}: case {table['case_id'][ok & (table['speedup'] == 0)].iloc[0]} has speedup 0")
    return table.set_index("case_id")


def compare(base: pd.DataFrame, head: pd.DataFrame, threshold: float) -> pd.DataFrame:
    rows = []
    for case_id in base.index.intersection(head.index):
        b, h = base.loc[case_id], head.loc[case_id]
        row = {"case_id": case_id, "base_speedup": b.get("speedup"), "run_speedup": h.get("speedup"),
               "base_status": b["status"], "run_status": h["status"]}
        if h["status"] != "ok":
            row.update(change=float("nan"), verdict="failed" if b["status"] == "ok" else "still failing")
        elif b["status"] != "ok":
            row.update(change=float("nan"), verdict="fixed")
        else:
            change = h["speedup"] / b["speedup"] - 1.0
            noise = NOISE_SIGMAS * math.hypot(b["speedup_iqr"], h["speedup_iqr"]) / 1.349
            slower = b["speedup"] - h["speedup"]
            if change < -threshold and slower > noise:
                verdict = "regression"
            elif change > threshold and -slower > noise:
                verdict = "faster"
            else:
                verdict = "same"
            row.update(change=change, noise=noise / b["speedup"], verdict=verdict)
        rows.append(row)
    return pd.DataFrame(rows)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("compare", help="flag speed regressions of RUN against BASELINE (exit 1)")
    p.add_argument("baseline", type=path_arg, help="a run folder or a baseline CSV")
    p.add_argument("run_dir", type=path_arg, help="a run folder or CSV")
    p.add_argument("--threshold", type=float, default=0.10, help="relative slowdown that counts (default 0.10)")
    p.add_argument("--allow-missing", action="store_true",
                   help="pass even when baseline cases are not in the run (default: a run missing cases fails)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not 0.0 < args.threshold < 1.0:
        raise UserError(f"--threshold must be in (0, 1), got {args.threshold}")
    for path in (args.baseline, args.run_dir):
        if not path.exists():
            raise UserError(f"{path}: no such run folder or file")
    base, head = _speedups(args.baseline), _speedups(args.run_dir)
    diff = compare(base, head, args.threshold)
    if diff.empty:
        raise UserError("the baseline and the run have no case in common")
    colors = {"regression": "red", "failed": "red", "faster": "green", "fixed": "green"}
    table = Table(title=f"speedup: {args.run_dir} vs baseline {args.baseline} (threshold {args.threshold:.0%})")
    for col in ("case", "baseline x", "run x", "change", "noise", "verdict"):
        table.add_column(col, justify="right")
    for r in diff.to_dict("records"):
        color = colors.get(r["verdict"], "white")
        fmt = lambda v, spec: "" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)  # noqa: E731
        table.add_row(r["case_id"], fmt(r["base_speedup"], ".2f"), fmt(r["run_speedup"], ".2f"),
                      fmt(r.get("change"), "+.1%"), fmt(r.get("noise"), ".1%"), f"[{color}]{r['verdict']}[/{color}]")
    Console(width=200).print(table)
    missing = base.index.difference(head.index)
    bad = diff["verdict"].isin(["regression", "failed"]).sum()
    print(f"{bad} regression(s) in {len(diff)} compared case(s)")
    if len(missing):
        # A run killed after its first case compares clean on the one case it has: not a pass.
        print(f"{len(missing)} baseline case(s) are not in the run (first: {missing[0]})"
              + ("" if args.allow_missing else "; a check of part of the cases fails (--allow-missing to pass it)"))
    return 1 if bad or (len(missing) and not args.allow_missing) else 0
