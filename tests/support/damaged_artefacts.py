"""The corpus of damaged artefacts: what a kill, a full disk, a bad copy or a hand edit leaves in a run
folder or a checkpoint. Beside tests/support/bad_inputs.py (a user's mistakes), and run the same generic way.

Each entry damages a copy of one real finished run, made once (tests/test_bench/store/test_damaged_artefacts.py: a
suite of two kernel cases and one trained CondNet): `damage` maps a file to its new bytes (a function
of the old ones) or None to delete it; `RUN` names the run folder and `CKPT` the model's checkpoint
folder, in paths and in the command. The promise, per entry, is one of two:
- refused: exit 2, one line naming the damage, no traceback, nothing created or changed;
- recovered (`recovers=True`): exit 0 with `message` said as a note, no traceback, and `then` (a command
  that reads what was repaired) succeeds without the note: the damage does not come back.
A new damage is one more line here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

Change = Callable[[bytes], bytes] | bytes | None


@dataclass(frozen=True)
class Damaged:
    id: str
    command: str  # words split on spaces; RUN and CKPT are replaced by their paths
    damage: dict[str, Change]
    message: str
    recovers: bool = False
    then: str = "report RUN"  # recovered entries: this must now pass, and without the note where `mended`
    mended: bool = True  # False: nothing to mend, the note says what the damaged file no longer tells
    made: dict[str, bytes] = field(default_factory=dict)  # files made beside the damage (new paths)


def rows(edit: Callable[[list[dict]], list[dict]]) -> Callable[[bytes], bytes]:
    """A damage of a JSON-lines table through its parsed rows."""
    return lambda raw: "".join(json.dumps(r) + "\n" for r in edit([json.loads(line) for line in raw.splitlines()])).encode()


def first_row(**changes) -> Callable[[bytes], bytes]:
    """The first row with fields replaced (a callable: a function of the old value)."""
    def edit(table: list[dict]) -> list[dict]:
        row = dict(table[0])
        for key, value in changes.items():
            row[key] = value(row[key]) if callable(value) else value
        return [row, *table[1:]]
    return rows(edit)


def env(**changes) -> Callable[[bytes], bytes]:
    return lambda raw: json.dumps({**json.loads(raw), **changes}).encode()


def metric(provider: str, name: str, value: float) -> Callable[[list[dict]], list[dict]]:
    return lambda metrics: [{**m, "median": value} if (m["provider"], m["metric"]) == (provider, name) else m
                            for m in metrics]


def cut(keep: float) -> Callable[[bytes], bytes]:
    """The file as a kill or a full disk leaves it: only its first `keep` fraction written."""
    return lambda raw: raw[: int(len(raw) * keep)]


ROWS, ENV, MODELS, HISTORIES = "RUN/kernels.jsonl", "RUN/env.json", "RUN/models.jsonl", "RUN/histories.json"
RERUN = "run RUN/suite.yaml --results res --quiet"  # trains nothing when the checkpoint is whole
NEWER = b'"schema_version": 9'

CORPUS = [
    # env.json: refused, never read as a half-known machine
    Damaged("env-garbage", "run --resume RUN", {ENV: b"{garbage"}, "env.json: not valid JSON"),
    Damaged("env-empty", "report RUN", {ENV: b""}, "env.json: not valid JSON"),
    Damaged("env-cut", "run --resume RUN", {ENV: cut(0.5)}, "env.json: not valid JSON"),
    Damaged("env-a-list", "run --resume RUN", {ENV: b"[]"}, "holds a JSON list"),
    Damaged("env-not-utf8", "report RUN", {ENV: b'{"a": "\xff"}'}, "not a UTF-8 text"),
    Damaged("env-bad-shard", "run --resume RUN", {ENV: env(shard=[3, 2])}, "shard must be"),
    Damaged("env-peaks-a-number", "report RUN", {ENV: env(peaks=3)}, "env.json: damaged (peaks is int"),
    Damaged("env-wall-seconds-text", "report RUN", {ENV: env(wall_seconds="long")}, "damaged (wall_seconds is str"),
    Damaged("env-load-a-list", "report RUN", {ENV: env(load_at_start=[1])}, "damaged (load_at_start is list"),
    Damaged("env-gpu-a-list", "report RUN", {ENV: env(gpu=[1])}, "env.json: damaged (gpu is list"),
    Damaged("env-threads-text", "report RUN", {ENV: env(torch_threads="two")}, "damaged (torch_threads is str"),
    Damaged("env-measured-text", "run --resume RUN", {ENV: env(measured="yes")}, "damaged (measured is str"),
    Damaged("env-nested-deep", "report RUN", {ENV: b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"},
            "env.json: nested too deep"),
    Damaged("env-a-folder", "report RUN", {ENV: None, "RUN/env.json/x": b""}, "env.json: cannot read the environment file: Is a directory"),
    # rows: a damaged line is named, never printed as data
    Damaged("rows-garbage-line", "run --resume RUN", {ROWS: lambda raw: raw + b"{oops\n"}, "line 3 is not a JSON row"),
    Damaged("rows-not-utf8", "run --resume RUN", {ROWS: lambda raw: raw + b"\xff\xfe\n"}, "line 3 is not UTF-8"),
    Damaged("rows-a-list", "report RUN", {ROWS: lambda raw: b"[1, 2]\n" + raw}, "line 1 is not a result row"),
    Damaged("rows-without-case-id", "run --resume RUN", {ROWS: lambda raw: raw + b'{"status": "ok"}\n'},
            "line 3 is not a result row"),
    Damaged("rows-newer-schema", "report RUN", {ROWS: lambda raw: raw.replace(b'"schema_version": 4', NEWER, 1)},
            "line 1 written by results schema version 9"),
    Damaged("rows-missing-field", "report RUN", {ROWS: rows(lambda t: [{k: v for k, v in t[0].items() if k != "batch"}])},
            "line 1 not a version-4 KernelRow (batch: Field required)"),
    Damaged("rows-nested-deep", "report RUN", {ROWS: b'{"case_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}\n"},
            "line 1 is nested too deep"),
    Damaged("rows-duplicate", "report RUN", {ROWS: lambda raw: raw + raw.splitlines(keepends=True)[0]}, "line 3 repeats k/cpu"),
    Damaged("rows-batch-0", "report RUN", {ROWS: first_row(batch=0)}, "no run writes (batch 0)"),
    Damaged("rows-density-above-1", "report RUN", {ROWS: first_row(ideal_density=1.5)}, "no run writes (ideal_density 1.5"),
    Damaged("rows-ok-without-metrics", "report RUN", {ROWS: first_row(metrics=[])}, "an ok case without the speedup of ours"),
    Damaged("rows-nan-speedup", "report RUN", {ROWS: first_row(metrics=metric("ours", "speedup", float("nan")))},
            "the speedup of ours is nan"),
    Damaged("rows-negative-time", "report RUN", {ROWS: first_row(metrics=metric("dense", "time", -3e-6))},
            "the time of dense is -3e-06"),
    Damaged("rows-a-folder", "report RUN", {ROWS: None, "RUN/kernels.jsonl/x": b""}, "kernels.jsonl: is a folder"),
    Damaged("models-error-above-1", "report RUN", {MODELS: first_row(test_error=2.0)}, "no run writes (test error 2.0"),
    Damaged("models-garbage-line", "report RUN", {MODELS: lambda raw: raw + b"{oops\n"}, "is not a JSON row"),
    Damaged("histories-cut", "run --resume RUN", {HISTORIES: cut(0.5)}, "histories.json: damaged"),
    Damaged("histories-a-list", "merge RUN --out m", {HISTORIES: b"[]"}, "histories.json: damaged"),
    Damaged("suite-cut-to-garbage", "run --resume RUN", {"RUN/suite.yaml": b"name: [unclosed"}, "bad YAML"),
    Damaged("suite-missing", "run --resume RUN", {"RUN/suite.yaml": None}, "no suite.yaml"),
    # recovered: a kill's leftovers are mended, said once, and do not come back
    Damaged("rows-last-line-cut-by-a-kill", "run --resume RUN --quiet", {ROWS: lambda raw: raw[:-40]},
            "dropped an unfinished last row", recovers=True,
            then="run --resume RUN --quiet"),
    Damaged("rows-lost-a-case", "run --resume RUN --quiet", {ROWS: lambda raw: raw.splitlines(keepends=True)[0]},
            "resuming: 1 models and 1 kernel cases already done", recovers=True, then="run --resume RUN --quiet"),
    Damaged("env-without-its-measurements", "report RUN", {ENV: lambda raw: b"{}"}, "an unknown machine, torch unknown",
            recovers=True, then="summary RUN --markdown", mended=False),
    Damaged("checkpoint-cut", RERUN, {"CKPT/model.pt": cut(0.5)}, "is damaged", recovers=True, then=RERUN),
    Damaged("checkpoint-empty", RERUN, {"CKPT/model.pt": b""}, "is damaged", recovers=True, then=RERUN),
    Damaged("checkpoint-garbage", RERUN, {"CKPT/model.pt": b"\x00garbage" * 50}, "is damaged", recovers=True, then=RERUN),
    Damaged("checkpoint-masks-garbage", RERUN, {"CKPT/masks.npz": b"PK\x03\x04garbage"}, "is damaged", recovers=True,
            then=RERUN),
    Damaged("checkpoint-metrics-garbage", RERUN, {"CKPT/metrics.json": b"{oops"}, "is damaged", recovers=True, then=RERUN),
    Damaged("checkpoint-metrics-a-list", RERUN, {"CKPT/metrics.json": b"[]"}, "is damaged", recovers=True, then=RERUN),
    Damaged("merge-killed-before-its-rename", "merge RUN --out m", {},
            "merged 1 run(s)", recovers=True, then="report m", made={".merging-m-x1y2/kernels.jsonl": b'{"case'}),
]
