"""`python -m bench report RUN`: a run's terminal report, its plots and HTML page. A reading command: the
run's CSV tables are written by the run (and by merge), not here."""

from __future__ import annotations

import argparse
import sys

from bench.cli.common import path_arg
from bench.core.errors import writable_folder
from bench.report.data import report_data
from bench.report.terminal import print_report, write_report
from bench.store.results import load_run
from bench.store.run_folder import refuse_links, writer_of


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("report", help="plots and an HTML page for a run")
    p.add_argument("run_dir", type=path_arg)
    p.add_argument("--out", type=path_arg, help="folder for the report (default: RUN_DIR/report)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    result = load_run(args.run_dir)
    if (writer := writer_of(args.run_dir)) is not None:
        print(f"note: {writer} is still writing {args.run_dir}; this report covers the cases finished so far",
              file=sys.stderr)
    out = writable_folder(args.out or args.run_dir / "report", "--out")
    refuse_links(out, "--out")
    data = report_data(result)
    print_report(data)
    page = write_report(data, out)
    print(f"report: {page}")
    return 0
