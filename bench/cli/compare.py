"""`python -m bench compare BASELINE RUN`: two runs' speedups, case by case, exit 1 on a regression."""

from __future__ import annotations

import argparse
import math

from rich.console import Console
from rich.table import Table

from bench.cli.common import path_arg
from bench.core.errors import UserError
from bench.regression.compare import speedups, compare


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
    base, head = speedups(args.baseline), speedups(args.run_dir)
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
