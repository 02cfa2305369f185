"""`python -m bench gpu-check --out DIR [--dry-run]`: the GPU run in one command, each step stopped at its
own time limit (bench.gpu.check)."""

from __future__ import annotations

import argparse

from rich.console import Console

from bench.cli.common import path_arg
from bench.gpu import check


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gpu-check", help="on a GPU machine: its tests, suites/gpu.yaml, profiles and compile metadata, within "
                          f"{check.STEPS_LIMIT_S / 60:.0f} minutes",
        description="Runs, one after another and each stopped at its own time limit so that what finished is "
                    "kept: the device's description, the GPU tests (pytest -m 'gpu or (triton and not slow)'), suites/gpu.yaml "
                    "(run folder and report), profiles of two of its cases, and the Triton compile metadata. "
                    "Everything goes under --out, with summary.json saying what each step did and which goals "
                    "the run met. --dry-run runs the same steps on this CPU under TRITON_INTERPRET=1 on the "
                    "suite shrunk to tiny shapes. Exit code 1 when a step failed or ran out of time.")
    p.add_argument("--out", type=path_arg, required=True, help="a new (or empty) folder for everything it writes")
    p.add_argument("--dry-run", action="store_true", help="on this CPU, Triton interpreted, tiny shapes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console(stderr=True, highlight=False)
    marks = {"ok": "[green]ok[/green]", "failed": "[red]FAILED[/red]", "timed_out": "[red]TIMED OUT[/red]"}

    def said(step: check.StepResult) -> None:
        console.print(f"{step.name}: {marks[step.status]} in {step.seconds:.0f} of {step.limit_s:.0f} s "
                      f"(log: {args.out / step.log})")

    with console.status("gpu-check: the steps run one at a time, each to its own limit"):
        summary = check.check(args.out, args.dry_run, on_step=said)
    for goal in summary["goals"]:
        if "error" in goal:
            console.print(f"goals: {goal['error']}")
            continue
        verdict = "met" if goal["met"] else f"missed by {goal['short_by']:.2f}"
        console.print(f"goal {goal['goal']}: {goal['metric']} {goal['measured']:.2f} of {goal['target']:.2f}, {verdict}"
                      + (" (flagged row)" if goal["flagged"] else ""))
    bad = [s["name"] for s in summary["steps"] if s["status"] != "ok"]
    console.print(f"summary: {args.out / 'summary.json'} ({summary['seconds']:.0f} s"
                  + (f"; not ok: {', '.join(bad)})" if bad else ")"))
    return 1 if bad else 0
