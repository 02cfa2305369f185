"""The condbench command line: one module per subcommand, each adding its parser and turning its arguments
into the typed call of the layer below; a user's mistake is one line and exit code 2."""

from __future__ import annotations

import argparse
import errno
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.cli import (compare, compile_check, continuous, data, export, gpu_check, gpu_wheels, kernels, merge, models,
                       power, profile, report, run, summary, train)
from bench.cli.common import Parser, fail
from bench.core.errors import UserError
from bench.machine.fingerprint import git_commit

# In the order --help lists them.
COMMANDS = (run, profile, report, summary, export, compare, continuous, power, merge, train, data, models, kernels,
            compile_check, gpu_check, gpu_wheels)

# The disk is full or read-only: a condition of the machine, not a bug to show a traceback for.
FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class _Version(argparse.Action):
    """--version: the package's version and the checkout's revision, looked up only when asked."""

    def __init__(self, option_strings, dest, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print condbench's version (and git revision) and exit")

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        try:
            installed = version("condbench")
        except PackageNotFoundError:  # run from a checkout that was never installed
            installed = "(not installed)"
        revision = git_commit()
        print(f"condbench {installed}" + (f" (git {revision})" if revision != "unknown" else ""))
        parser.exit()


def main(argv: list[str] | None = None) -> int:
    # the console script `condbench` and `python -m bench` are one CLI: help names the one typed
    prog = "condbench" if Path(sys.argv[0]).name == "condbench" else "python -m bench"
    parser = Parser(prog=prog, description="condbench: when does conditional computation pay off?")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parser(sub)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except UserError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if exc.errno not in FULL_OR_READ_ONLY:
            raise
        # Rows are written case by case and fsynced: what was finished is safe, and --resume finishes it.
        where = f" writing {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}; free space (or make it writable), then --resume the run")
