"""`python -m bench merge RUN... --out DIR`: join shard runs (e.g. a Slurm array job) into one run."""

from __future__ import annotations

import argparse

from bench.cli.common import path_arg
from bench.report.data import report_data
from bench.report.terminal import print_report, write_report
from bench.store.results import merge_runs


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("merge", help="join the shard runs of one suite into one run folder")
    p.add_argument("runs", type=path_arg, nargs="+", help="the shard run folders")
    p.add_argument("--out", type=path_arg, required=True, help="the merged run's folder (its report goes in report/)")
    p.add_argument("--partial", action="store_true",
                   help="merge even when a shard is missing or unfinished (the merged run says what it lacks)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    merged = merge_runs(args.runs, args.out, partial=args.partial)
    print(f"merged {len(args.runs)} run(s): {len(merged.kernels)} kernel case(s), {len(merged.models)} model(s) -> {args.out}")
    for gap in merged.env.get("partial", []):
        print(f"partial: {gap}")
    # The merged run gets the report a single run gets (merge_runs has written its tables).
    data = report_data(merged)
    print_report(data)
    print(f"report: {write_report(data, args.out / 'report')}")
    return 0
