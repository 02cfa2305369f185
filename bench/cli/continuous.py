"""`python -m bench continuous SUITE --base REV`: the options, typed into ContinuousOptions, then the check
(bench.regression.continuous)."""

from __future__ import annotations

import argparse

from bench.cli.common import bounded_float, bounded_int, path_arg
from bench.regression.continuous import ContinuousOptions
from bench.regression.continuous import run as run_check


def env_assignment(text: str) -> tuple[str, str]:
    """An argparse type: NAME=VALUE."""
    name, sep, value = text.partition("=")
    if not sep or not name or not name.replace("_", "a").isalnum() or name[0].isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (an environment variable), got {text!r}")
    return name, value


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("continuous", help="time the working tree against a git revision, interleaved; "
                                                  "exit 1 on a regression")
    p.add_argument("suite", type=path_arg, help="suite YAML with kernel sweeps (e.g. suites/ci.yaml)")
    p.add_argument("--base", required=True, metavar="REV", help="the git revision to compare against")
    p.add_argument("--rounds", type=bounded_int(2, 50), default=3,
                   help="processes per side, alternating (default 3; at least 2 for the t-test)")
    p.add_argument("--threshold", type=bounded_float(0.01, 0.99), default=0.10,
                   help="relative slowdown of a speedup that counts (default 0.10)")
    p.add_argument("--head-env", type=env_assignment, action="append", default=[], metavar="NAME=VALUE",
                   help="set in the head's processes only (e.g. CONDBENCH_NATIVE=0 to try the fallback)")
    p.add_argument("--free-cores-only", action="store_true",
                   help="run every process with only the cores other processes leave free at the start")
    p.add_argument("--out", type=path_arg, help="keep the runs and the verdicts (continuous.csv) in this folder")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_check(ContinuousOptions(suite=args.suite, base=args.base, rounds=args.rounds, threshold=args.threshold,
                                       head_env=tuple(args.head_env), free_cores_only=args.free_cores_only,
                                       out=args.out))
