"""`python -m bench run SUITE`: suite -> cases -> correctness -> timing -> results, with live progress.

Models come first (kernel cases may time their masks), then kernel cases. Each finished case is
appended to the run folder at once, so Ctrl-C or a kill loses at most the case in flight, and
`--resume RUN_DIR` finishes the rest.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.cases import check_runnable, kernel_cases, model_cases, parse_shard, shard
from bench.cli_common import UserError
from bench.env import fingerprint
from bench.measure import run_kernel_case
from bench.models import measure_model, train_missing, train_or_reuse
from bench.report import print_report, write_report
from bench.results import append_row, drop_partial_tail, load_run, read_rows, write_tables
from bench.suite import Suite, load_suite, parse_suite
from condcore.data import DatasetNotFound, load_dataset
from condcore.data.formats import DataFormatError
from condcore.timing import copy_bandwidth

DEFAULT_ROOT = Path("results")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a suite and store its results")
    p.add_argument("suite", type=Path, nargs="?", help="suite YAML (not needed with --resume)")
    p.add_argument("--results", type=Path, default=DEFAULT_ROOT, help="results root (default: results/)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="finish an interrupted run")
    p.add_argument("--shard", default="0/1", help="run only shard i of n (0-based), e.g. 2/8")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no report")
    p.set_defaults(run=run)


def _open_run(args: argparse.Namespace) -> tuple[Suite, Path, tuple[int, int]]:
    if args.resume is not None:
        folder = args.resume
        if not (folder / "suite.yaml").exists():
            raise UserError(f"{folder}: not a run folder to resume (no suite.yaml)")
        suite = parse_suite((folder / "suite.yaml").read_text(), str(folder / "suite.yaml"))
        meta = json.loads((folder / "env.json").read_text())
        return suite, folder, tuple(meta.get("shard", [0, 1]))
    if args.suite is None:
        raise UserError("name a suite file (e.g. suites/cpu.yaml) or --resume RUN_DIR")
    suite = load_suite(args.suite)
    index, count = parse_shard(args.shard)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    folder = args.results / "runs" / (f"{suite.name}-{stamp}" + (f"-shard{index}of{count}" if count > 1 else ""))
    folder.mkdir(parents=True, exist_ok=False)
    (folder / "suite.yaml").write_text(args.suite.read_text())
    return suite, folder, (index, count)


def run(args: argparse.Namespace) -> int:
    suite, folder, (index, count) = _open_run(args)
    kernels = shard(kernel_cases(suite), index, count)
    models = shard(model_cases(suite), index, count)
    check_runnable(kernels, str(args.suite or folder))
    torch.set_num_threads(suite.threads)
    if not (folder / "env.json").exists():
        env = fingerprint(suite.threads)
        env.update(suite=suite.name, shard=[index, count],
                   copy_bandwidth_Bps={d: copy_bandwidth(d) for d in sorted({c.device for c in kernels})})
        (folder / "env.json").write_text(json.dumps(env, indent=2))
    env = json.loads((folder / "env.json").read_text())
    for table in ("models", "kernels"):
        drop_partial_tail(folder / f"{table}.jsonl")
    done_models = {r["name"] for r in read_rows(folder / "models.jsonl")}
    done_kernels = {r["case_id"] for r in read_rows(folder / "kernels.jsonl")}
    checkpoints = args.results / "checkpoints"
    console = Console(stderr=True)
    console.print(f"[bold]{suite.name}[/bold]: {len(models)} models, {len(kernels)} kernel cases -> {folder}")
    data = None
    if suite.models is not None:
        try:
            data = load_dataset(suite.models.dataset, suite.models.data_dir, seed=suite.seed)
        except (DatasetNotFound, DataFormatError) as exc:
            raise UserError(str(exc)) from None
    needed = {c.model for c in kernels if c.model}
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=console, disable=args.quiet)
    try:
        with progress:
            # Another shard's model whose masks a kernel case here times: train it here too.
            shard_names = {case.name for case in models}
            to_train = [case for case in models if case.name not in done_models]
            to_train += [case for case in model_cases(suite) if case.name in needed - shard_names]
            if suite.models is not None and to_train:
                jobs = suite.models.train_jobs or suite.threads
                training = progress.add_task(f"training ({jobs} at a time)", total=len(to_train))
                train_missing(to_train, data, (suite.models.dataset, suite.models.data_dir, suite.seed), checkpoints,
                              jobs, on_done=lambda case: progress.advance(training))
            task = progress.add_task("cases", total=len(models) + len(kernels))
            progress.advance(task, len(done_models & shard_names) + len(done_kernels & {k.case_id for k in kernels}))
            for case in models:
                if case.name in done_models:
                    continue
                progress.update(task, description=f"model {case.name}")
                model, metrics = train_or_reuse(case, data, checkpoints, progress=False)  # trained above: loads
                row = {"name": case.name, **measure_model(model, metrics, data, tuple(suite.models.batches), suite.repeats)}
                append_row(folder / "models.jsonl", row)
                progress.advance(task)
            for case in kernels:
                if case.case_id in done_kernels:
                    continue
                progress.update(task, description=f"kernel {case.case_id}")
                row = run_kernel_case(case, checkpoints=checkpoints, seed=suite.seed, rounds=suite.repeats,
                                      bandwidth=env["copy_bandwidth_Bps"][case.device],
                                      cuda_graph=case.device == "cuda" and case.batch <= suite.cuda_graph_max_batch)
                append_row(folder / "kernels.jsonl", row)
                progress.advance(task)
    except KeyboardInterrupt:
        console.print(f"interrupted: finished cases are in {folder}; finish with "
                      f"`python -m bench run --resume {folder}`")
        return 130
    result = load_run(folder)
    write_tables(result)
    if not args.quiet:
        print_report(result)
        console.print(f"report: {write_report(result, folder / 'report')}")
    failed = int((result.kernels["status"] != "ok").sum()) if not result.kernels.empty else 0
    console.print(f"results: {folder}" + (f" ([red]{failed} failed case(s)[/red])" if failed else ""))
    return 0
