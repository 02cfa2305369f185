"""The rows both reports show, as data: kernel rows in reading order, the density a case asked for,
the peer summary and each peer row's winner (the terminal and HTML renderers format them)."""

from __future__ import annotations

import math

import pandas as pd

from bench.store.results import Run
from condcore.ops.kernel_log import KERNEL_NAMES


def machine_line(env: dict) -> str:
    """Where and how the run was measured, from env.json: "AMD EPYC (AVX512), torch 2.13.0, 2 threads". A
    run whose env.json lacks a field says "unknown" for it (a hand-made or damaged file), never "None"."""
    gpu = env.get("gpu") if isinstance(env.get("gpu"), dict) else None
    where = (gpu or {}).get("name") or (None if gpu else env.get("cpu_model")) or "an unknown machine"
    if not gpu and env.get("cpu_model") and env.get("cpu_capability"):
        where += f" ({env['cpu_capability']}{', native bf16' if env.get('cpu_native_bf16') else ''})"
    threads = env.get("torch_threads")
    return f"{where}, torch {env.get('torch') or 'unknown'}, {'unknown' if threads is None else threads} threads"


def in_reading_order(rows: pd.DataFrame) -> pd.DataFrame:
    """Kernel rows ordered as numbers, not as the strings of their case ids (which put B = 16 before 4 and
    k = 128 before 64): by batch, block size, mask source, then density, stably."""
    keys = [c for c in ("batch", "block_size", "mask_source", "requested_density", "ideal_density") if c in rows]
    return rows.sort_values(keys, kind="stable", na_position="last") if keys else rows


def peer_summary(run: Run) -> pd.DataFrame:
    """Per kernel case with peers: ours' median time, each provider's speedup over the case's baseline
    with its interval (or why it did not run), and ours' rank among all it was timed with."""
    long, k = run.providers, run.kernels
    if long.empty or "provider" not in long:
        return pd.DataFrame()
    long = long[long["role"] == "peer"]
    if long.empty:
        return pd.DataFrame()
    columns = ["sweep", "batch", "block_size", "masks", "mask_source", "requested_density", "tau", "ideal_density",
               "speedup", "speedup_ci_low", "speedup_ci_high", "ours_rank", "providers_timed"]
    head = k.set_index("case_id")[[c for c in columns if c in k]]  # runs before tau have none
    rows = []
    for case_id, group in long.groupby("case_id", sort=False):
        row = {"case_id": case_id, **head.loc[case_id].to_dict()}
        for r in group.to_dict("records"):
            ok = r["status"] == "ok"
            row[r["provider"]] = (r["speedup"], r["speedup_ci_low"], r["speedup_ci_high"]) if ok else r["status"]
        rows.append(row)
    summary = pd.DataFrame(rows)
    # Sweeps in the run's order, each one's rows as numbers.
    order = {sweep: i for i, sweep in enumerate(dict.fromkeys(summary["sweep"]))}
    return in_reading_order(summary).sort_values("sweep", key=lambda s: s.map(order), kind="stable")


def fastest_peer(row: dict, names: list[str]) -> tuple[str | None, bool]:
    """Of a peer_summary row: the fastest peer that ran (None if none did), and whether ours is at least
    as fast as it."""
    timed = [n for n in names if isinstance(row.get(n), tuple)]
    best = max(timed, key=lambda n: row[n][0]) if timed else None
    return best, best is None or row["speedup"] >= row[best][0]


def asked_density(row: dict) -> str:
    """The density the suite asked for, or a trained-mask case's tau."""
    if row["mask_source"] == "trained" and row.get("tau") is not None:
        return f"tau {float(row['tau']):g}"
    return f"{row.get('requested_density', math.nan):g}"


def kernel_cells(rows: pd.DataFrame) -> list[str]:
    """The kernel each row's ours took; "?" for a row from before it was recorded, "" for a failed one."""
    kernels = rows["kernel"] if "kernel" in rows else pd.Series([""] * len(rows), index=rows.index)
    return [(k if isinstance(k, str) and k else "?") if status == "ok" else ""
            for k, status in zip(kernels, rows["status"])]


CACHE_STATES = {"cold": "the caches flushed before every timed call, the roofline's bandwidth DRAM's",
                "warm": "the calls of a sample on what the one before left in the caches, the roofline's bandwidth "
                        "the last-level cache's"}


def cache_cell(row: dict) -> str:
    """The cache state a row was timed with; rows from before it was recorded were timed warm."""
    cache = row.get("cache")
    return cache if isinstance(cache, str) and cache else "warm"


def baseline_cell(row: dict) -> str:
    """The row's baseline of record, short: plain (x @ W.T), onednn, gemv, ..."""
    name = row.get("baseline")
    name = name if isinstance(name, str) and name else "dense"
    return "plain" if name == "dense" else name.removeprefix("dense_")


def baseline_phrase(kernels: pd.DataFrame) -> str:
    """What the run's speedups divide, for a caption: the fastest dense path, or for runs from before
    it was chosen (their rows name no baseline) plain x @ W.T."""
    if kernels.empty:
        return "dense"
    if "baseline" in kernels and kernels["baseline"].map(lambda v: isinstance(v, str) and bool(v)).all():
        return "the best dense path timed in the case"
    return "plain x @ W.T (a run from before the fastest dense path became the baseline)"


BASELINE_NAMES = {"plain": "x @ W.T as nn.Linear runs it", "onednn": "oneDNN's inner product on a packed weight",
                  "gemv": "torch.mv, batch 1", "wxt": "W @ x.T transposed back"}


def baseline_note(rows: pd.DataFrame) -> str:
    """The caption's words for x and the baseline column: what the speedups divide, the baselines present."""
    present = {baseline_cell(r) for r in rows.to_dict("records") if r.get("status") == "ok"}
    names = "; ".join(f"{short}: {about}" for short, about in BASELINE_NAMES.items() if short in present)
    return (f"x: speedup over {baseline_phrase(rows)}" + (f" (baseline {names})" if names else "")
            + "; x plain: over plain x @ W.T")


def cache_note(rows: pd.DataFrame) -> str:
    """What the cache states of these rows mean, only those present: "cache cold: ...; warm: ..."."""
    present = {cache_cell(r) for r in rows.to_dict("records")}
    return "cache " + "; ".join(f"{state}: {about}" for state, about in CACHE_STATES.items() if state in present)


def kernel_legend(rows: pd.DataFrame) -> list[tuple[str, str]]:
    """(name, what it runs) for each kernel named in the rows, in the registry's order."""
    named = {part for cell in kernel_cells(rows) for part in cell.split("+") if part}
    return [(name, about) for name, about in KERNEL_NAMES.items() if name in named]
