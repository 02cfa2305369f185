"""`python -m bench run SUITE`: the options, typed into a RunOptions, then the runner (bench.runner)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from bench.cli.common import bounded_float, bounded_int, path_arg
from bench.core.errors import UserError
from bench.launch import LAUNCH_FILE, LaunchOptions, launch
from bench.runner import RunOptions
from bench.runner import run as run_suite


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a suite and store its results")
    add_run_options(p)
    p.add_argument("--profile", action="store_true",
                   help="also profile each case: phases, a trace, peak memory, counters (see `bench profile`)")
    launch = p.add_argument_group("shards as scheduler jobs, through submitit (bench.launch)")
    launch.add_argument("--launcher", choices=["slurm", "local"],
                        help="run the suite as --shards jobs on Slurm (a job array), or locally one at a time, then "
                             "merge them; --resume LAUNCH_DIR finishes such a launch")
    launch.add_argument("--shards", type=bounded_int(1, 10_000), default=None, help="how many jobs (default: 1)")
    launch.add_argument("--partition", help="Slurm partition")
    launch.add_argument("--gpus-per-shard", type=bounded_int(0, 64), default=0, help="GPUs per job")
    launch.add_argument("--time-limit", type=bounded_int(1, 60 * 24 * 14), default=60, metavar="MINUTES",
                        help="each job's time limit")
    launch.add_argument("--sbatch", action="append", metavar="KEY=VALUE", default=[],
                        help="another sbatch option, e.g. account=ml (repeat it for more)")
    launch.add_argument("--max-resubmits", type=bounded_int(0, 100), default=2,
                        help="times a shard whose job died is submitted again")
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
    launched = args.resume is not None and (args.resume / LAUNCH_FILE).is_file()
    if args.launcher is None and not launched:
        if args.shards is not None or args.sbatch or args.partition:
            raise UserError("--shards, --partition and --sbatch go with --launcher slurm or local")
        return run_suite(options_of(args))
    sbatch = {}
    for item in args.sbatch:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--sbatch {item!r}: write KEY=VALUE, e.g. account=ml")
        sbatch[key.strip()] = value
    run_options = options_of(args)
    if launched:
        run_options = replace(run_options, resume=None)
    return launch(LaunchOptions(run=run_options, launcher=args.launcher or "local", shards=args.shards or 1,
                                partition=args.partition, gpus_per_shard=args.gpus_per_shard,
                                time_limit_min=args.time_limit, sbatch=sbatch, max_resubmits=args.max_resubmits,
                                resume=args.resume if launched else None))
