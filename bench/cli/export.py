"""`python -m bench export RUN --format pytest-benchmark --out F.json`: a run in another tool's format."""

from __future__ import annotations

import argparse
import json

from bench.cli.common import path_arg
from bench.core.errors import UserError, writable_folder
from bench.report.exports import FORMATS
from bench.store.results import load_run


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="a run as pytest-benchmark's saved-run JSON or github-action-benchmark's list")
    p.add_argument("run_dir", type=path_arg, help="a run folder, results/runs/<run id>")
    p.add_argument("--format", required=True, choices=sorted(FORMATS), help="what reads the file")
    p.add_argument("--out", type=path_arg, required=True, help="the JSON file to write")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.out.is_dir():
        raise UserError(f"--out {args.out}: is a folder, not a file")
    exported = FORMATS[args.format](load_run(args.run_dir))
    writable_folder(args.out.parent, "--out's folder")
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(exported, indent=2, allow_nan=False) + "\n")
    tmp.replace(args.out)
    count = len(exported["benchmarks"]) if isinstance(exported, dict) else len(exported)
    print(f"{count} benchmark(s) of {args.run_dir} -> {args.out} ({args.format})")
    return 0
