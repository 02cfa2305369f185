"""`python -m bench summary RUN --markdown`: a run's answer as markdown (the README's results section)."""

from __future__ import annotations

import argparse

from bench.report.data import report_data
from bench.report.markdown import markdown_summary
from bench.cli.common import path_arg
from bench.store.results import load_run


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("summary", help="a run's answer as markdown (the README's results section)")
    p.add_argument("run_dir", type=path_arg, help="a run folder, results/runs/<run id>")
    p.add_argument("--markdown", action="store_true", help="print markdown (the only format for now)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print(markdown_summary(report_data(load_run(args.run_dir)), args.run_dir.as_posix().rstrip("/")))
    return 0
