"""`python -m bench data download NAME`: the only place condbench touches the network."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.cli.common import UserError, path_arg
from condcore.data.download import SOURCES, DownloadError, download


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("data", help="dataset files")
    sub = p.add_subparsers(dest="data_command", required=True)
    d = sub.add_parser("download", help="download a dataset and check its published checksums")
    d.add_argument("name", choices=list(SOURCES))
    d.add_argument("--data-dir", type=path_arg, default=Path("data"))
    d.set_defaults(run=run_download)


def run_download(args: argparse.Namespace) -> int:
    try:
        folder = download(args.name, args.data_dir)
    except DownloadError as exc:
        raise UserError(str(exc)) from None
    print(f"{args.name}: verified files in {folder}")
    return 0
