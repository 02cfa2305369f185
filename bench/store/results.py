"""The results store: one folder per run, rows appended case by case, tidy pandas tables on top.

results/runs/<run_id>/
  suite.yaml      the suite as run           env.json     the machine fingerprint
  kernels.jsonl   one JSON row per finished kernel case (appended and fsynced: a kill loses at most
  models.jsonl    the case in flight)         one row per trained model (bench.core.schema: typed, versioned)
  kernels.csv, kernels.parquet   one row per case, with ours-vs-baseline summary columns
  providers.csv   one row per case and provider (its check, time and speedup)
  metrics.csv     every metric of every provider of every case, long format
  models.csv, model_speeds.csv   one row per model; one per model and batch size
  profiles.jsonl, model_profiles.jsonl, traces/   with --profile: each kernel case's and each model's
                  profile (bench.core.schema.KernelProfile, ModelProfile) and their Chrome traces
  phases.csv      every profiled phase, long format
  (the tables are rewritten from the rows at the end of a run)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import pandas as pd

from bench.core.errors import UserError, read_text, writable_folder
from bench.store.run_folder import open_no_follow, read_env, refuse_links, writer_of
from pydantic import BaseModel, ValidationError

from bench.core.schema import (KernelProfile, KernelRow, ModelProfile, ModelRow, SchemaError, implausible, kernel_summary,
                          model_speed_records, model_time_records, parse_kernel_row, parse_model_row, provider_records)

TABLE_KEYS = {"kernels": "case_id", "models": "name"}  # each table's row key
TABLES = tuple(TABLE_KEYS)


def append_row(path: Path, row: dict | BaseModel) -> None:
    if not isinstance(row, dict):
        row = row.model_dump()
    with os.fdopen(open_no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND), "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def drop_partial_tail(path: Path) -> str:
    """Cuts a last line left unfinished by a kill, so its case runs again and rows appended on resume
    start on a line of their own; returns a note saying so, or "" when there was none."""
    if not path.exists():
        return ""
    raw = path.read_bytes()
    if not raw or raw.endswith(b"\n"):
        return ""
    keep = raw.rfind(b"\n") + 1
    with open(path, "r+b") as f:
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())
    return f"{path.name}: dropped an unfinished last row ({len(raw) - keep} bytes, a kill during a write); its case runs again"


def read_rows(path: Path, key: str) -> list[dict]:
    """The rows of a .jsonl table, each a JSON object with `key`. A last line without its newline (a kill
    during the write) is left out; any other bad line is one error naming it, since guessing past it
    would drop or duplicate a case."""
    if not path.exists():
        return []
    if path.is_dir():
        raise UserError(f"{path}: is a folder where the run's {path.stem} table should be")
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    complete = lines[:-1]  # the last element is "" after a final newline, else an unfinished row
    rows = []
    for number, line in enumerate(complete, start=1):
        where = f"{path}: line {number}"
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError:
            raise UserError(f"{where} is not UTF-8 text; the file is damaged (delete that line to rerun its case)") from None
        except json.JSONDecodeError as exc:
            raise UserError(f"{where} is not a JSON row ({exc.msg}); delete that line to rerun its case") from None
        except RecursionError:
            raise UserError(f"{where} is nested too deep to be a result row; delete that line to rerun its case") from None
        if not isinstance(row, dict) or not isinstance(row.get(key), str):
            raise UserError(f"{where} is not a result row (a JSON object with a {key!r} string); "
                            "delete that line to rerun its case")
        rows.append(row)
    return rows


def read_typed_rows(path: Path, table: str) -> list[KernelRow] | list[ModelRow]:
    """A table's rows as schema records (version-1 rows upgraded); a row of an unknown version, or one
    that is not a row of this table, is one error naming its line."""
    parse = {"kernels": parse_kernel_row, "models": parse_model_row}[table]
    typed, lines = [], {}
    for number, raw in enumerate(read_rows(path, TABLE_KEYS[table]), start=1):
        try:
            typed.append(parse(raw))
        except SchemaError as exc:
            raise UserError(f"{path}: line {number} {exc}") from None
        key = raw[TABLE_KEYS[table]]
        if key in lines:  # counted twice in every table and summary: not a row to guess about
            raise UserError(f"{path}: line {number} repeats {key} of line {lines[key]}; delete one of them")
        lines[key] = number
    return typed


def read_profiles(path: Path, schema: type[BaseModel], key: str) -> list:
    """A profile table's rows, the last of each key kept (a case killed between its profile and its
    row is profiled again on resume); a row that is not one is an error naming its line."""
    by_key = {}
    for number, raw in enumerate(read_rows(path, key), start=1):
        try:
            row = schema.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "row"
            raise UserError(f"{path}: line {number} is not a {schema.__name__} ({where}: {first['msg']})") from None
        if problem := implausible(row):
            raise UserError(f"{path}: line {number} a {schema.__name__} that no run writes ({problem})")
        by_key[(getattr(row, key), getattr(row, "batch", None))] = row
    return list(by_key.values())


@dataclass
class Run:
    folder: Path
    env: dict
    kernel_rows: list[KernelRow] = field(default_factory=list)
    model_rows: list[ModelRow] = field(default_factory=list)
    kernel_profiles: list[KernelProfile] = field(default_factory=list)
    model_profiles: list[ModelProfile] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.folder.name

    @cached_property
    def kernels(self) -> pd.DataFrame:
        """One row per case: its fields and the ours-vs-baseline summary columns (bench.core.schema.SUMMARY)."""
        return pd.DataFrame([kernel_summary(r) for r in self.kernel_rows])

    @cached_property
    def providers(self) -> pd.DataFrame:
        """One row per case and provider (baseline, ours, peers): its check, time and speedup."""
        return pd.DataFrame([rec for r in self.kernel_rows for rec in provider_records(r)])

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """Every metric of every provider of every case, long format."""
        return pd.DataFrame([{"case_id": r.case_id, "sweep": r.sweep, **m.model_dump(exclude={"batch"})}
                             for r in self.kernel_rows for m in r.metrics])

    @cached_property
    def models(self) -> pd.DataFrame:
        """One row per trained model (per-layer densities as a list), without its timings. `test_error` is
        that of the inference timed (ModelRow.timed_test_error), so that every analysis weighs the accuracy
        of what it timed; where that inference was not the float32 checkpoint's, `checkpoint_test_error`
        keeps the checkpoint's. Where every model's inference ran on the CPU in float32, without the
        columns that say so: a run from before devices and a CPU run since read the same."""
        where = {"device", "inference_dtype", "inference_test_error"}
        on_cpu = all((r.device, r.inference_dtype) == ("cpu", "float32") for r in self.model_rows)
        records = []
        for r in self.model_rows:
            record = r.model_dump(exclude={"metrics", "checks", "samples", *where} if on_cpu
                                  else {"metrics", "checks", "samples", "inference_test_error"})
            if not on_cpu:
                record.update(test_error=r.timed_test_error, checkpoint_test_error=r.test_error)
            records.append(record)
        return pd.DataFrame(records)

    @cached_property
    def model_speeds(self) -> pd.DataFrame:
        """One row per model and batch size: the dense twin's and ours' times and the speedup."""
        return pd.DataFrame([rec for r in self.model_rows for rec in model_speed_records(r)])

    @cached_property
    def model_times(self) -> pd.DataFrame:
        """One row per model, batch size and model provider: its check, and its time where it was timed
        (with the per-round seconds and timing group a speedup between two models pairs rounds by)."""
        return pd.DataFrame([rec for r in self.model_rows for rec in model_time_records(r)])

    @cached_property
    def phases(self) -> pd.DataFrame:
        """Every profiled phase, long format: the kernel case or model (and batch), provider, phase path,
        seconds per call and share of the instrumented call."""
        records = []
        for kind, profiles in (("kernel", self.kernel_profiles), ("model", self.model_profiles)):
            for prof in profiles:
                name = prof.case_id if kind == "kernel" else prof.name
                for provider in prof.providers:
                    records += [{"kind": kind, "name": name, "batch": getattr(prof, "batch", None),
                                 "provider": provider.provider, "phase": phase, "seconds": seconds,
                                 "share": seconds / provider.total_s} for phase, seconds in provider.phases.items()]
        return pd.DataFrame(records)


def per_dataset(run: Run) -> list[tuple[str, Run]]:
    """The run's models by dataset, each part with no kernel cases: a model is compared only with the
    models of its own dataset (a frontier of CIFAR-10 dense nets says nothing of an MNIST CondNet). A
    run whose models are of one dataset, or that has none, is one part: the run itself."""
    datasets = list(dict.fromkeys(r.dataset for r in run.model_rows))
    if len(datasets) <= 1:
        return [(datasets[0] if datasets else "", run)]
    parts = []
    for dataset in datasets:
        rows = [r for r in run.model_rows if r.dataset == dataset]
        names = {r.name for r in rows}
        parts.append((dataset, replace(run, kernel_rows=[], kernel_profiles=[], model_rows=rows,
                                       model_profiles=[p for p in run.model_profiles if p.name in names])))
    return parts


def load_run(folder: Path) -> Run:
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    refuse_links(folder, "a run folder")
    env = read_env(folder)
    if env is None:
        raise UserError(f"{folder}: not a condbench run (no env.json)")
    return Run(folder, env, read_typed_rows(folder / "kernels.jsonl", "kernels"),
               read_typed_rows(folder / "models.jsonl", "models"),
               read_profiles(folder / "profiles.jsonl", KernelProfile, "case_id"),
               read_profiles(folder / "model_profiles.jsonl", ModelProfile, "name"))


def write_tables(run: Run) -> None:
    """The run's tables as CSV (and the kernels as parquet), in its folder."""
    folder = run.folder
    if not run.kernels.empty:
        run.kernels.to_csv(folder / "kernels.csv", index=False)
        try:
            run.kernels.to_parquet(folder / "kernels.parquet", index=False)
        except ImportError:  # parquet needs pyarrow; the CSV is the portable copy
            pass
    for name in ("providers", "metrics", "models", "model_speeds", "model_times", "phases"):
        table = getattr(run, name)
        if name == "model_times" and not table.empty:
            table = table.drop(columns=["samples"])  # the rows keep them; a CSV cell of lists helps nobody
        if not table.empty:
            table.to_csv(folder / f"{name}.csv", index=False)


def read_histories(folder: Path) -> dict[str, list[dict]]:
    """A run's training histories (model name -> one record per epoch); {} when it has none yet."""
    path = folder / "histories.json"
    if not path.exists():
        return {}
    try:
        histories = json.loads(read_text(path, "histories file"))
    except (ValueError, RecursionError):
        histories = None
    if not isinstance(histories, dict):
        raise UserError(f"{path}: damaged (not a JSON object of training histories)")
    return histories


def merge_runs(folders: list[Path], out: Path, partial: bool = False) -> Run:
    """Joins shard runs of one suite into one run folder (same suite text; no case twice). A set with a
    shard missing, or a shard that lacks some of its cases, is refused unless `partial`, and then the
    merged env.json says what is missing. The merge is built in a hidden folder beside `out` and renamed
    into place: a kill leaves no folder that loads as a finished run, and the retry starts clean."""
    from bench.store.coverage import coverage, shard_of  # it plans cases from suites, which import this module

    runs = [load_run(f) for f in folders]
    suites = {read_text(f / "suite.yaml", "suite file") if (f / "suite.yaml").is_file() else "" for f in folders}
    if len(suites) != 1 or "" in suites:
        raise UserError("the runs to merge come from different suites (or one has no suite.yaml)")
    if len({f.resolve() for f in folders}) != len(folders):
        raise UserError("a run is named twice among the runs to merge")
    for run in runs:
        if (writer := writer_of(run.folder)) is not None:
            raise UserError(f"{run.folder}: {writer} is still writing this run; merge it when it has finished")
    suite_text = suites.pop()
    histories = {}
    for folder in folders:
        histories.update(read_histories(folder))
    if out.is_file():
        raise UserError(f"--out {out}: is a file, not a folder")
    if out.is_symlink() or (out.exists() and any(out.iterdir())):
        raise UserError(f"--out {out}: already exists and is not an empty folder; merge into a new one")
    parent = writable_folder(out.parent, "--out")
    gaps = _shard_gaps(runs, [shard_of(r) for r in runs], [coverage(r, suite_text) for r in runs])
    if gaps and not partial:
        raise UserError("; ".join(gaps) + " (merge every shard once finished, or --partial to merge what is there)")
    staging = Path(tempfile.mkdtemp(dir=parent, prefix=f".merging-{out.name}-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private
        _write_merged(runs, staging, suite_text, histories, gaps)
        if out.exists():
            out.rmdir()  # empty, as checked: rename needs it gone
        os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    merged = load_run(out)
    write_tables(merged)
    return merged


def _shard_gaps(runs: list[Run], shards: list[tuple[int, int]], covered: list) -> list[str]:
    """What the set of shard runs lacks, one phrase each: shards missing, named twice, or unfinished."""
    counts = {count for _, count in shards}
    if len(counts) != 1:
        raise UserError(f"the runs to merge split the suite differently ({', '.join(f'{i}/{n}' for i, n in shards)})")
    count = counts.pop()
    indices = [index for index, _ in shards]
    if len(set(indices)) != len(indices):
        raise UserError(f"shard {next(i for i in indices if indices.count(i) > 1)}/{count} is named twice")
    gaps = [f"shard {i}/{count} is missing" for i in range(count) if i not in indices]
    gaps += [c.describe(r.run_id) for r, c in zip(runs, covered) if not c.complete]
    return gaps


def _write_merged(runs: list[Run], out: Path, suite_text: str, histories: dict, gaps: list[str]) -> None:
    (out / "suite.yaml").write_text(suite_text)
    env = dict(runs[0].env)
    env.pop("wall_seconds", None)  # each shard's, in shard_envs: shards may have run side by side
    env["merged_from"] = [r.run_id for r in runs]
    env["shard_envs"] = [r.env for r in runs]
    if gaps:
        env["partial"] = gaps  # merged with --partial: what the merged run lacks
    (out / "env.json").write_text(json.dumps(env, indent=2))
    for table, key in TABLE_KEYS.items():
        seen = set()
        for shard_run in runs:  # typed: rows of an older schema are written in today's
            for row in getattr(shard_run, f"{table[:-1]}_rows"):
                if getattr(row, key) in seen:
                    raise UserError(f"case {getattr(row, key)} appears in more than one run")
                seen.add(getattr(row, key))
                append_row(out / f"{table}.jsonl", row)
    for shard_run in runs:  # profiles, and the traces they name
        for name, rows in (("profiles", shard_run.kernel_profiles), ("model_profiles", shard_run.model_profiles)):
            for row in rows:
                append_row(out / f"{name}.jsonl", row)
        if (shard_run.folder / "traces").is_dir():
            shutil.copytree(shard_run.folder / "traces", out / "traces", dirs_exist_ok=True)
    if histories:
        (out / "histories.json").write_text(json.dumps(histories, indent=1))
