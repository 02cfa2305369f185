"""`python -m bench models`: the speed-versus-accuracy table of trained models on this machine."""

from __future__ import annotations

import argparse

import pandas as pd
import torch

from bench.plan.cases import check_threads
from bench.cli.common import UserError, bounded_float, bounded_int, bounded_int_list, path_arg, writable_folder
from bench.core.model_providers import DEFAULT_MODEL_PROVIDERS, model_provider_names
from bench.measure.model import TimedModel, time_models
from bench.plan.models import model_grid
from bench.measure.train import Datasets, check_fits, train_missing, train_or_reuse
from bench.analysis.frontier import label, reference_hidden
from bench.core.schema import ModelRow, model_speed_records, model_time_records
from bench.analysis.summary import ms_text
from bench.report.markdown import markdown_table
from bench.plan.suite import MAX_BATCH, MAX_EPOCHS, MAX_FEATURES, MAX_LR, MAX_REPEATS, MIN_LR, MAX_SEED, MAX_THREADS
from condcore.data import DATASETS, DatasetNotFound
from condcore.data.formats import DataFormatError
from condcore.policies import POLICIES
from condcore.train import PRECISIONS, TrainConfig


def _floats(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"every tau must be in (0, 1], got {text!r}")
    return values


def _policies(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [n for n in names if n not in POLICIES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown policy {', '.join(unknown) or text!r}; choose from {', '.join(POLICIES)}")
    return names


def _providers(text: str) -> list[str]:
    names = list(dict.fromkeys(v.strip() for v in text.split(",") if v.strip()))
    unknown = [n for n in names if n not in model_provider_names()]
    if unknown or not names:
        named = ", ".join(unknown) if unknown else repr(text)
        raise argparse.ArgumentTypeError(f"unknown model provider {named}; "
                                         f"choose from {', '.join(model_provider_names())}")
    return ["ours", *[n for n in names if n != "ours"]]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("models", help="train a grid of models and time their inference against dense")
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--data-dir", type=path_arg)
    p.add_argument("--policies", type=_policies, default=list(POLICIES))
    p.add_argument("--taus", type=_floats, default=[0.5, 0.25, 0.1])
    p.add_argument("--hidden", type=bounded_int_list(1, MAX_FEATURES), default=[2048, 2048])
    p.add_argument("--block-size", type=bounded_int(1, MAX_FEATURES), default=128)
    p.add_argument("--epochs", type=bounded_int(1, MAX_EPOCHS), default=20)
    p.add_argument("--seed", type=bounded_int(0, MAX_SEED), default=0)
    p.add_argument("--batch-size", type=bounded_int(1, MAX_BATCH), default=TrainConfig.batch_size,
                   help="training minibatch")
    p.add_argument("--lr", type=bounded_float(MIN_LR, MAX_LR), default=TrainConfig.lr, help="the network's learning rate")
    p.add_argument("--batches", type=bounded_int_list(1, MAX_BATCH), default=[1, 256])
    p.add_argument("--dense-widths", type=bounded_int_list(1, MAX_FEATURES), default=[],
                   help="also dense nets this wide (comma-separated), the frontier each CondNet is compared with")
    p.add_argument("--providers", type=_providers, default=list(DEFAULT_MODEL_PROVIDERS),
                   help=f"how each model's inference is timed (comma-separated, ours always): {', '.join(model_provider_names())}")
    p.add_argument("--rounds", type=bounded_int(1, MAX_REPEATS), default=30, help="timing rounds per batch size")
    p.add_argument("--threads", type=bounded_int(1, MAX_THREADS), default=2)
    p.add_argument("--precision", choices=PRECISIONS, default="auto", help="training GEMMs (see bench train)")
    p.add_argument("--jobs", type=bounded_int(0, MAX_THREADS), default=0,
                   help="models trained side by side, one thread each (0: --threads)")
    p.add_argument("--out", type=path_arg, required=True)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_threads(args.threads, "--threads")
    for width in args.hidden:
        if width % args.block_size:
            raise UserError(f"hidden width {width} is not a multiple of block size {args.block_size}")
    for widths in (args.hidden, *([w] * len(args.hidden) for w in args.dense_widths)):
        check_fits(args.dataset, widths, args.batch_size, "--hidden" if widths is args.hidden else "--dense-widths")
    torch.set_num_threads(args.threads)
    datasets = Datasets({args.dataset: args.data_dir})
    try:
        data = datasets(args.dataset, args.seed)
    except (DatasetNotFound, DataFormatError) as exc:
        raise UserError(str(exc)) from None
    writable_folder(args.out, "--out")  # after the dataset: a mistake there leaves no empty folder
    cases = model_grid(args.dataset, args.policies, args.taus, tuple(args.hidden), args.block_size, args.epochs,
                       [args.seed], args.precision, batch_size=args.batch_size, lr=args.lr,
                       dense_widths=args.dense_widths)
    checkpoints = args.out / "checkpoints"
    train_missing(cases, datasets, checkpoints, args.jobs or args.threads,
                  on_done=lambda case: print(f"trained {case.name}", flush=True))
    timed = [TimedModel(case.name, *train_or_reuse(case, data, checkpoints), data) for case in cases]
    fields = time_models(timed, tuple(args.batches), args.rounds, tuple(args.providers), args.threads)
    rows = [ModelRow(name=case.name, seed=case.seed, **fields[case.name]) for case in cases]
    table = pd.DataFrame([r.model_dump(exclude={"metrics", "samples", "checks"}) for r in rows])
    speeds = pd.DataFrame([rec for r in rows for rec in model_speed_records(r)])
    times = pd.DataFrame([rec for r in rows for rec in model_time_records(r)])
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "models.csv", index=False)
    speeds.to_csv(args.out / "model_speeds.csv", index=False)
    times.to_csv(args.out / "model_times.csv", index=False)
    text = to_markdown(table, speeds, args.batches) + "\n\n" + providers_markdown(table, times, args.providers)
    (args.out / "models.md").write_text(text + "\n")
    print(text)
    return 0


def providers_markdown(table: pd.DataFrame, times: pd.DataFrame, providers: list[str]) -> str:
    """Per model and batch, each provider's ms per batch (median [95% interval]), or why it has none."""
    ref = reference_hidden(table)
    names = {r["name"]: label(r["policy"], r["tau"], r["hidden"], ref) for r in table.to_dict("records")}
    cell = {(r["name"], r["batch"], r["provider"]): r for r in times.to_dict("records")}
    rows = []
    for (name, batch), _ in times.groupby(["name", "batch"], sort=False):
        cells = []
        for provider in providers:
            r = cell.get((name, batch, provider))
            if r is None:
                cells.append("")
            elif r["status"] != "ok" or pd.isna(r.get("median_s")):
                cells.append(r["status"])
            else:
                cells.append(ms_text(r["median_s"], r["low_s"], r["high_s"]))
        rows.append([names.get(name, name), batch, *cells])
    return "\n".join(["ms per batch under each provider (median [95% interval]; a provider that could not run the "
                      "model or failed its check says so, the reason in model_times.csv):", "",
                      *markdown_table(["model", "B", *providers], "lr" + "r" * len(providers), rows)])


def to_markdown(table: pd.DataFrame, speeds: pd.DataFrame, batches: list[int]) -> str:
    head = ["policy", "tau", "mode", "test error %", "density per layer"] + [f"speedup B={b}" for b in batches]
    speedup = {(r["name"], r["batch"]): r["speedup"] for r in speeds.to_dict("records")}
    rows = [[r.policy, f"{r.tau:g}", r.inference_mode, f"{100 * r.test_error:.2f}",
             ", ".join(f"{d:.3f}" for d in r.realized_density), *(f"{speedup[(r['name'], b)]:.2f}" for b in batches)]
            for _, r in table.iterrows()]
    return "\n".join(markdown_table(head, "l" * len(head), rows))
