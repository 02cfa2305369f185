"""The condbench command line: one module per subcommand, each adding its parser and turning its arguments
into the typed call of the layer below; a user's mistake is one line and exit code 2."""

from __future__ import annotations

import errno
import sys

from bench.cli import (compare, compile_check, continuous, data, kernels, merge, models, power, profile, report, run,
                       summary, train)
from bench.cli.common import Parser, fail
from bench.core.errors import UserError

# In the order --help lists them.
COMMANDS = (run, profile, report, summary, compare, continuous, power, merge, train, data, models, kernels,
            compile_check)

# The disk is full or read-only: a condition of the machine, not a bug to show a traceback for.
FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m bench", description="condbench: when does conditional computation pay off?")
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
