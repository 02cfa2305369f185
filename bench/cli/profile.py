"""`python -m bench profile SUITE [--case ID_OR_GLOB]`: a run of the suite's cases (or those matching
--case) that also profiles each one: `bench run --profile`."""

from __future__ import annotations

from bench.cli import run


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "profile", help="run a suite's cases with profiles: phases, Chrome traces, peak memory, perf counters",
        description="Runs the suite (or the cases --case matches) as `bench run` does, and profiles each case "
                    "after timing it: its phases, a Chrome trace per provider, peak memory, perf counters; "
                    "each model at batch 1 and 256 layer by layer beside its dense twin.")
    run.add_run_options(p)
    p.set_defaults(run=lambda args: run.run_suite(run.options_of(args)), profile=True)
