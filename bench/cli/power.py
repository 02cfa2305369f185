"""`python -m bench power SUITE --slowdown-env NAME=VALUE`: the options, typed into PowerOptions, then the study
(bench.regression.power)."""

from __future__ import annotations

import argparse

from bench.cli.common import bounded_float, bounded_int, path_arg
from bench.cli.continuous import env_assignment
from bench.regression.power import PowerOptions
from bench.regression.power import run as run_study


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("power", help="measure the regression check's detection and false-alarm rates")
    p.add_argument("suite", type=path_arg, help="suite YAML with kernel sweeps (e.g. suites/ci.yaml)")
    p.add_argument("--slowdown-env", type=env_assignment, action="append", required=True, metavar="NAME=VALUE",
                   help="what makes the slowed side slow (e.g. CONDBENCH_NATIVE=0)")
    p.add_argument("--comparisons", type=bounded_int(1, 200), default=20, help="comparisons to run (default 20)")
    p.add_argument("--rounds", type=bounded_int(2, 50), default=3, help="processes per side per comparison (default 3)")
    p.add_argument("--threshold", type=bounded_float(0.01, 0.99), default=0.10,
                   help="the check's threshold (default 0.10); rates at 5-20%% are reported too")
    p.add_argument("--busy-core", action="store_true", help="keep one core busy with another process throughout")
    p.add_argument("--free-cores-only", action="store_true",
                   help="as continuous's: every process runs only on the cores other processes leave free")
    p.add_argument("--out", type=path_arg, help="the study's folder (default results/power/<suite>-<time>); "
                                            "an unfinished study there continues")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_study(PowerOptions(suite=args.suite, slowdown_env=tuple(args.slowdown_env), comparisons=args.comparisons,
                                  rounds=args.rounds, threshold=args.threshold, busy_core=args.busy_core,
                                  free_cores_only=args.free_cores_only, out=args.out))
