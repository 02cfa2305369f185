"""The results store: one folder per run, rows appended case by case, tidy pandas tables on top.

results/runs/<run_id>/
  suite.yaml      the suite as run           env.json     the machine fingerprint
  kernels.jsonl   one JSON row per finished kernel case (appended and fsynced: a kill loses at most
  models.jsonl    the case in flight)         one row per trained model
  kernels.csv, kernels.parquet, models.csv    the tidy tables, rewritten at the end of a run
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.cli_common import UserError

TABLES = ("kernels", "models")


def append_row(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row, default=str) + "\n")
        f.flush()
        os.fsync(f.fileno())


def drop_partial_tail(path: Path) -> None:
    """Cuts a last line left unfinished by a kill, so rows appended on resume start on a line of their own."""
    if not path.exists():
        return
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        path.write_bytes(raw[: raw.rfind(b"\n") + 1])


def read_rows(path: Path) -> list[dict]:
    """Rows of a .jsonl file; a last line cut short by a kill is ignored (that case reruns on resume)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


@dataclass
class Run:
    folder: Path
    env: dict
    kernels: pd.DataFrame
    models: pd.DataFrame

    @property
    def run_id(self) -> str:
        return self.folder.name


def load_run(folder: Path) -> Run:
    if not folder.is_dir():
        raise UserError(f"{folder}: no such run folder")
    if not (folder / "env.json").exists():
        raise UserError(f"{folder}: not a condbench run (no env.json)")
    env = json.loads((folder / "env.json").read_text())
    tables = {name: pd.DataFrame(read_rows(folder / f"{name}.jsonl")) for name in TABLES}
    return Run(folder, env, tables["kernels"], tables["models"])


def write_tables(run: Run) -> None:
    if not run.kernels.empty:
        run.kernels.to_csv(run.folder / "kernels.csv", index=False)
        try:
            run.kernels.to_parquet(run.folder / "kernels.parquet", index=False)
        except ImportError:  # parquet needs pyarrow; the CSV is the portable copy
            pass
    if not run.models.empty:
        run.models.to_csv(run.folder / "models.csv", index=False)


def merge_runs(folders: list[Path], out: Path) -> Run:
    """Joins shard runs of one suite into one run folder (same suite text; no case twice)."""
    runs = [load_run(f) for f in folders]
    suites = {(f / "suite.yaml").read_text() for f in folders}
    if len(suites) != 1:
        raise UserError("the runs to merge come from different suites")
    out.mkdir(parents=True, exist_ok=True)
    if any((out / f"{t}.jsonl").exists() for t in TABLES):
        raise UserError(f"{out}: already holds results; merge into a new folder")
    (out / "suite.yaml").write_text(suites.pop())
    env = dict(runs[0].env)
    env["merged_from"] = [r.run_id for r in runs]
    env["shard_envs"] = [r.env for r in runs]
    (out / "env.json").write_text(json.dumps(env, indent=2))
    for table, key in (("kernels", "case_id"), ("models", "name")):
        seen = set()
        for run in runs:
            for row in getattr(run, table).to_dict("records"):
                if row[key] in seen:
                    raise UserError(f"case {row[key]} appears in more than one run")
                seen.add(row[key])
                append_row(out / f"{table}.jsonl", row)
    merged = load_run(out)
    write_tables(merged)
    return merged
