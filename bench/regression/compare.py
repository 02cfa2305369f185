"""`python -m bench compare BASELINE RUN`: speed regressions, judged on speedup ratios.

Absolute times are not compared: CI boxes are noisy and differ from each other, while the ratio of
sparse to dense measured interleaved in one run is stable. A case regresses only when its speedup fell
by more than the threshold (default 10%) AND by more than the noise: twice the pooled spread of the
two runs' per-round speedups (IQR / 1.349 estimates a standard deviation).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from bench.core.errors import UserError
from bench.store.results import load_run

NOISE_SIGMAS = 2.0


REQUIRED_COLUMNS = ("case_id", "status", "speedup", "speedup_iqr")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: is empty, not a results CSV") from None
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        reason = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else str(exc).splitlines()[0]
        raise UserError(f"{path}: not a results CSV ({reason})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it: {exc.strerror or exc}") from None


def speedups(path: Path) -> pd.DataFrame:
    """A run folder or a baseline CSV (as committed under results/baselines/), checked: one row per case,
    a status per row and a numeric speedup and spread for every ok row."""
    table = _read_csv(path) if path.is_file() else load_run(path).kernels
    if table.empty:
        raise UserError(f"{path}: holds no kernel cases")
    missing = [c for c in REQUIRED_COLUMNS if c not in table]
    if missing:
        raise UserError(f"{path}: lacks the column(s) {', '.join(missing)} of a results table")
    duplicated = table["case_id"][table["case_id"].duplicated()]
    if len(duplicated):
        raise UserError(f"{path}: case {duplicated.iloc[0]} appears more than once")
    table = table.assign(status=table["status"].astype(str))
    ok = table["status"] == "ok"
    for column in ("speedup", "speedup_iqr"):
        values = pd.to_numeric(table[column], errors="coerce")
        bad = ok & ~(values.notna() & (values >= 0) & values.abs().lt(float("inf")))
        if bad.any():
            raise UserError(f"{path}: case {table['case_id'][bad].iloc[0]} has {column} "
                            f"{table[column][bad].iloc[0]!r}, not a finite number >= 0")
        table[column] = values
    if (ok & (table["speedup"] == 0)).any():
        raise UserError(f"{path}: case {table['case_id'][ok & (table['speedup'] == 0)].iloc[0]} has speedup 0")
    return table.set_index("case_id")


def compare(base: pd.DataFrame, head: pd.DataFrame, threshold: float) -> pd.DataFrame:
    rows = []
    for case_id in base.index.intersection(head.index):
        b, h = base.loc[case_id], head.loc[case_id]
        row = {"case_id": case_id, "base_speedup": b.get("speedup"), "run_speedup": h.get("speedup"),
               "base_status": b["status"], "run_status": h["status"]}
        if h["status"] != "ok":
            row.update(change=float("nan"), verdict="failed" if b["status"] == "ok" else "still failing")
        elif b["status"] != "ok":
            row.update(change=float("nan"), verdict="fixed")
        else:
            change = h["speedup"] / b["speedup"] - 1.0
            noise = NOISE_SIGMAS * math.hypot(b["speedup_iqr"], h["speedup_iqr"]) / 1.349
            slower = b["speedup"] - h["speedup"]
            if change < -threshold and slower > noise:
                verdict = "regression"
            elif change > threshold and -slower > noise:
                verdict = "faster"
            else:
                verdict = "same"
            row.update(change=change, noise=noise / b["speedup"], verdict=verdict)
        rows.append(row)
    return pd.DataFrame(rows)
