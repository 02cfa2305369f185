"""`python -m bench run SUITE`: the options, typed into a RunOptions, then the runner (bench.runner)."""

from __future__ import annotations

import argparse

from bench.cli.common import bounded_float, path_arg
from bench.runner import RunOptions
from bench.runner import run as run_suite


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a suite and store its results")
    add_run_options(p)
    p.add_argument("--profile", action="store_true",
                   help="also profile each case: phases, a trace, peak memory, counters (see `bench profile`)")
    p.set_defaults(run=run)


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The options of `run`, which `profile` shares."""
    p.add_argument("suite", type=path_arg, nargs="?", help="suite YAML (not needed with --resume)")
    p.add_argument("--results", type=path_arg, help="results root (default: results/; a resumed run keeps its own)")
    p.add_argument("--resume", type=path_arg, metavar="RUN_DIR", help="finish an interrupted run")
    p.add_argument("--shard", help="run only shard i of n (0-based), e.g. 2/8 (default: 0/1, all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no report")
    p.add_argument("--wait-quiet", type=bounded_float(0.0, 86400.0), metavar="SECONDS", default=0.0,
                   help="wait up to SECONDS for other processes to leave this run's CPUs, then start")
    p.add_argument("--free-cores-only", action="store_true",
                   help="run with no more threads than the cores other processes leave free at the start")
    p.add_argument("--case", metavar="ID_OR_GLOB", action="append",
                   help="run only the kernel cases whose id, and the models whose name, match (fnmatch "
                        "glob; repeat it for more)")


def options_of(args: argparse.Namespace) -> RunOptions:
    """The parsed arguments of `run` or `profile` as the runner's typed options."""
    return RunOptions(suite=args.suite, results=args.results, resume=args.resume, shard=args.shard, quiet=args.quiet,
                      wait_quiet=args.wait_quiet, free_cores_only=args.free_cores_only,
                      case=tuple(args.case) if args.case else None, profile=args.profile)


def run(args: argparse.Namespace) -> int:
    return run_suite(options_of(args))
