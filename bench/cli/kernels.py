"""`python -m bench kernels`: the kernel speed goals' cases, a suite run by the suite runner.

    python -m bench kernels                 # suites/kernels-cpu.yaml: fp32, B = 1024 and decode, 2048²
    python -m bench kernels --device cuda   # suites/kernels-cuda.yaml: bf16 large batch and decode

A thin alias of `python -m bench run`: it takes the device's suite, applies its options to it (dtype,
threads, rounds, seed, tiny shapes) and runs it, so every case is checked against the float64
reference, timed interleaved with the dense baseline and the suite's peers (the best dense paths and
the naive gather loop), and stored, reported and checked against the speed goals like any run. The run
folder's suite.yaml is the suite as run, options applied.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from bench.cli.common import bounded_int, path_arg
from bench.runner import DEFAULT_ROOT, RunOptions
from bench.runner import run as run_suite

SUITES = Path(__file__).resolve().parents[2] / "suites"
SUITE_FOR = {"cpu": SUITES / "kernels-cpu.yaml", "cuda": SUITES / "kernels-cuda.yaml"}
# --small: shapes a smoke test runs in seconds (not a measurement)
SMALL = {"shape": [{"in_features": 256, "out_features": 256}], "block_size": [32]}
SMALL_MAX_BATCH = 64


def suite_text(device: str, *, dtype: str | None, threads: int | None, rounds: int | None, seed: int | None,
               small: bool) -> str:
    """The device's suite with the options applied, as YAML."""
    suite = yaml.safe_load(SUITE_FOR[device].read_text())
    suite.update({key: value for key, value in (("threads", threads), ("repeats", rounds), ("seed", seed))
                  if value is not None})
    for sweep in suite["kernels"]:
        if dtype is not None:
            sweep["dtype"] = [dtype]
        if small:
            sweep.update(SMALL, batch=sorted({min(b, SMALL_MAX_BATCH) for b in sweep["batch"]}))
            sweep.pop("include", None)
            sweep.pop("exclude", None)
    if small:
        suite["name"] += "-small"
    return yaml.safe_dump(suite, sort_keys=False)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("kernels", help="the kernel speed goals' cases as a suite, its options applied, run by the runner",
                                   description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=sorted(SUITE_FOR), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"),
                        help="default: the suite's (float32 on CPU, bfloat16 on CUDA)")
    parser.add_argument("--threads", type=bounded_int(1, 1024), help="CPU threads (default: the suite's)")
    parser.add_argument("--rounds", type=bounded_int(2, 10_000), help="CPU timing rounds (default: the suite's)")
    parser.add_argument("--seed", type=bounded_int(0, 2**31 - 1), help="default: the suite's")
    parser.add_argument("--small", action="store_true", help="tiny shapes: a smoke test, not a measurement")
    parser.add_argument("--results", type=path_arg, default=DEFAULT_ROOT, help="results root (default: results/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no report")
    parser.add_argument("--case", metavar="ID_OR_GLOB", action="append",
                        help="only the cases whose id matches (fnmatch glob; repeat it for more)")
    parser.add_argument("--profile", action="store_true", help="profile each case too (as `bench profile`)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    text = suite_text(args.device, dtype=args.dtype, threads=args.threads, rounds=args.rounds, seed=args.seed,
                      small=args.small)
    name = f"{SUITE_FOR[args.device].relative_to(SUITES.parent)} (as bench kernels runs it)"
    options = RunOptions(suite=Path(name), suite_text=text, results=args.results, quiet=args.quiet,
                         case=tuple(args.case) if args.case else None, profile=args.profile)
    return run_suite(options)
