"""python -m bench: the condbench command line."""

from __future__ import annotations

import errno
import sys

from bench import (compare, continuous, data_cmd, merge_cmd, models_cmd, power_cmd, profile_cmd, report, run,
                   summary, train_cmd)
from bench.cli_common import Parser, UserError, fail


# The disk is full or read-only: a condition of the machine, not a bug to show a traceback for.
FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m bench", description="condbench: when does conditional computation pay off?")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run.add_parser(sub)
    profile_cmd.add_parser(sub)
    report.add_parser(sub)
    summary.add_parser(sub)
    compare.add_parser(sub)
    continuous.add_parser(sub)
    power_cmd.add_parser(sub)
    merge_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    data_cmd.add_parser(sub)
    models_cmd.add_parser(sub)
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


if __name__ == "__main__":
    sys.exit(main())
