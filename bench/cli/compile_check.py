"""`python -m bench compile-check`: compile a suite's Triton launches for a GPU that is not here, and show what they became."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

import triton

from bench.cli.common import bounded_int, fail, path_arg
from bench.core.errors import UserError
from bench.measure.compile_check import GPU_SUITE, OPCODES, SHARED_LIMIT, CompiledConfig, check_cases, suite_cases
from bench.plan.suite import MAX_THREADS


def render(rows: list[CompiledConfig], arch: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Triton kernels compiled for sm_{arch} (no GPU needed): resources and SASS opcode counts")
    for col in ("regime", "B", "K", "N", "k", "dtype", "masks", "config", "regs", "stack B", "shared KB", *OPCODES):
        table.add_column(col, justify="right")
    limit = SHARED_LIMIT.get(arch)
    for r in rows:
        c = r.case
        head = [c.regime, str(c.batch), str(c.in_features), str(c.out_features), str(c.block_size), c.dtype, c.masks, r.config]
        if not r.ok:
            table.add_row(*head, f"[red]FAILED: {r.error}[/red]", *[""] * (len(OPCODES) + 2))
            continue
        stack = f"[red]{r.stack_bytes}[/red]" if r.spills else "0"
        shared = f"{r.shared_bytes / 1024:.1f}" + (" [red](over)[/red]" if limit and r.shared_bytes > limit else "")
        table.add_row(*head, str(r.registers), stack, shared, *(str(r.opcodes[op]) for op in OPCODES))
    Console(width=None if sys.stdout.isatty() else 200).print(table)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("compile-check", help="compile the Triton launches of a suite's CUDA cases for a GPU "
                                   "that is not here: registers, spills, shared memory, SASS opcodes")
    parser.add_argument("--arch", type=int, default=90, help="CUDA compute capability to compile for (90: H100/H200)")
    parser.add_argument("--suite", type=path_arg, default=GPU_SUITE, help="take the launches from this suite's CUDA "
                        "cases (default: suites/gpu.yaml)")
    parser.add_argument("--regime", choices=("grouped", "union"), help="only this kernel")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), help="only this dtype")
    parser.add_argument("--workers", type=bounded_int(1, MAX_THREADS), help="compiling processes (default: one per core)")
    parser.add_argument("--json", metavar="PATH", type=path_arg, help="also write the rows as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # Before minutes of compiling, not after them.
    if args.json is not None and not args.json.parent.is_dir():
        fail(f"--json {args.json}: no folder {args.json.parent} to write it in")
    if args.json is not None and args.json.is_dir():
        fail(f"--json {args.json}: is a folder, not a file")
    try:
        launches = suite_cases(args.suite)
    except UserError as exc:
        fail(str(exc))
    cases = [c for c in launches
             if args.regime in (None, c.regime) and args.dtype in (None, c.dtype)]
    if not cases:
        fail(f"{args.suite}: no CUDA case with a Triton kernel" + (" matches --regime/--dtype" if args.regime or args.dtype else ""))
    rows = check_cases(cases, args.arch, args.workers)
    render(rows, args.arch)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"arch": args.arch, "triton": triton.__version__, "rows": [asdict(r) for r in rows]}, f, indent=2)
    return 0 if all(r.ok for r in rows) else 1
