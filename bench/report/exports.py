"""A run in the formats other benchmark tools read: pytest-benchmark's saved-run JSON (what
`pytest-benchmark compare` reads) and github-action-benchmark's `customSmallerIsBetter` list.

One benchmark per kernel case and timed provider, and per model, provider and batch size. Statistics are
pytest-benchmark's own (its `Stats`) over the row's per-round seconds, so they are exact where the row
kept them (schema version 4 on the CPU; a model row's since version 3, less the calls per round). A row
without them (written before version 4, or timed by do_bench on CUDA, which keeps quantiles, not rounds)
is exported from its median and IQR: the others are spread around those and the benchmark's extra_info
says `approximate` and why.
"""

from __future__ import annotations

from typing import Callable

from pytest_benchmark.stats import Stats

from bench.core.schema import KernelRow, ModelRow, RoundTimes
from bench.store.results import Run

APPROXIMATE_BEFORE_V4 = "the row kept no per-round times (written before results schema version 4)"
APPROXIMATE_CUDA = "do_bench keeps quantiles, not rounds: min and max are its 20% and 80% quantiles"
UNKNOWN_CALLS = "iterations: the calls per round were not recorded (before results schema version 4)"


def pytest_benchmark_json(run: Run) -> dict:
    """The run as a pytest-benchmark saved run ({"machine_info", "commit_info", "benchmarks", "datetime",
    "version"})."""
    from pytest_benchmark import __version__

    return {"machine_info": machine_info(run.env), "commit_info": commit_info(run.env),
            "benchmarks": [b for row in run.kernel_rows for b in _kernel_benchmarks(run, row)]
            + [b for row in run.model_rows for b in _model_benchmarks(run, row)],
            "datetime": run.env.get("timestamp"), "version": __version__}


def github_action_benchmark(run: Run) -> list[dict]:
    """The run as github-action-benchmark's customSmallerIsBetter entries: each benchmark's median time in
    microseconds, its IQR as the range, and what a reader needs in `extra`."""
    entries = []
    for bench in pytest_benchmark_json(run)["benchmarks"]:
        stats, extra = bench["stats"], bench["extra_info"]
        notes = [f"{key} {extra[key]}" for key in ("speedup", "test_error", "load_flags", "approximate") if extra.get(key)]
        entries.append({"name": bench["fullname"], "unit": "us", "value": round(stats["median"] * 1e6, 4),
                        "range": f"± {stats['iqr'] * 1e6 / 2:.4g}", "extra": "; ".join([f"rounds {stats['rounds']}", *notes])})
    return entries


FORMATS: dict[str, Callable[[Run], object]] = {"pytest-benchmark": pytest_benchmark_json,
                                               "github-action-benchmark": github_action_benchmark}


def machine_info(env: dict) -> dict:
    """pytest-benchmark's machine_info keys, from what env.json recorded of the machine (its platform
    string is Python's: system-release-machine-with-libc)."""
    system, _, rest = (env.get("platform") or "").partition("-")
    release, _, machine = rest.split("-with-")[0].rpartition("-")
    return {"node": env.get("hostname", ""), "processor": env.get("cpu_model", ""), "machine": machine,
            "python_implementation": "CPython", "python_version": env.get("python", ""), "system": system,
            "release": release, "cpu": {"brand_raw": env.get("cpu_model", ""), "count": env.get("cpu_logical_cores"),
                                        "capability": env.get("cpu_capability", "")},
            "torch": env.get("torch", ""), "triton": env.get("triton", ""), "gpu": env.get("gpu"),
            "torch_threads": env.get("torch_threads")}


def commit_info(env: dict) -> dict:
    """pytest-benchmark's commit_info: the revision the run measured, `-dirty` read off as its flag."""
    commit = env.get("git_commit", "") or ""
    return {"id": commit.removesuffix("-dirty"), "dirty": commit.endswith("-dirty"), "project": "condbench",
            "branch": None, "time": None, "author_time": None}


def _kernel_benchmarks(run: Run, row: KernelRow) -> list[dict]:
    if row.status != "ok":
        return []
    params = {"device": row.device, "dtype": row.dtype, "backend": row.backend, "regime": row.regime_used,
              "batch": row.batch, "shape": f"{row.in_features}x{row.out_features}", "block_size": row.block_size,
              "density": row.requested_density if row.requested_density is not None else row.tau,
              "masks": row.masks, "mask_source": row.mask_source, "cache": row.cache}
    extra_row = {"case_id": row.case_id, "baseline": row.baseline_of_record, "kernel": row.kernel,
                 "load_flags": row.load_flags, "work_density": row.work_density}
    benchmarks = []
    for check in row.checks:
        time = row.metric(check.provider, "time")
        if time is None:
            continue
        extra = dict(extra_row, role=check.role)
        if (speedup := row.metric(check.provider, "speedup")) is not None:
            extra.update(speedup=speedup.median, speedup_ci_low=speedup.low, speedup_ci_high=speedup.high)
        kept = next((s for s in row.samples if s.provider == check.provider), None)
        stats, note = _stats(kept, time.median, time.iqr, time.low, time.high, row.rounds, row.device)
        if note:
            extra["approximate"] = note
        benchmarks.append(_benchmark(run, group=row.sweep, name=f"{row.case_id}[{check.provider}]",
                                     params={**params, "provider": check.provider}, stats=stats, extra=extra))
    return benchmarks


def _model_benchmarks(run: Run, row: ModelRow) -> list[dict]:
    benchmarks = []
    for time in (m for m in row.metrics if m.metric == "time" and m.batch is not None):
        kept = next((s for s in row.samples if (s.provider, s.batch) == (time.provider, time.batch)), None)
        stats, note = _stats(kept, time.median, time.iqr, time.low, time.high, None, "cpu")
        extra = {"model": row.name, "test_error": row.timed_test_error, "realized_density": row.realized_density,
                 "load_flags": row.load_flags, "timing_group": row.timing_group}
        if time.provider == "ours" and (speedup := next((m for m in row.metrics if (m.provider, m.metric, m.batch)
                                                         == ("ours", "speedup", time.batch)), None)) is not None:
            extra.update(speedup=speedup.median, speedup_ci_low=speedup.low, speedup_ci_high=speedup.high)
        if note:
            extra["approximate"] = note
        params = {"dataset": row.dataset, "policy": row.policy, "tau": row.tau, "hidden": row.hidden,
                  "block_size": row.block_size, "seed": row.seed, "batch": time.batch, "provider": time.provider}
        benchmarks.append(_benchmark(run, group=f"models/{row.dataset}/B{time.batch}",
                                     name=f"{row.name}[{time.provider}-B{time.batch}]", params=params, stats=stats,
                                     extra=extra))
    return benchmarks


def _benchmark(run: Run, *, group: str, name: str, params: dict, stats: dict, extra: dict) -> dict:
    # fullname leaves the run out: two runs of one suite name the same benchmark alike, as compare needs
    return {"group": group, "name": name, "fullname": f"{run.env.get('suite') or run.run_id}::{name}",
            "params": params, "param": name[name.index("[") + 1:-1], "extra_info": extra,
            "options": {"timer": "perf_counter", "disable_gc": True, "warmup": True}, "stats": stats}


def _stats(kept: RoundTimes | None, median: float, iqr: float | None, low: float | None, high: float | None,
           rounds: int | None, device: str) -> tuple[dict, str]:
    """(pytest-benchmark's stats, "" or why they are approximate)."""
    if kept is not None and kept.seconds:
        stats = Stats()
        for seconds in kept.seconds:
            stats.update(seconds)
        return {**stats.as_dict(), "data": list(kept.seconds), "iterations": kept.calls or 1}, \
            "" if kept.calls else UNKNOWN_CALLS
    spread = iqr or 0.0
    q1, q3 = median - spread / 2, median + spread / 2
    cuda = device == "cuda"
    low_, high_ = (low, high) if cuda and low is not None and high is not None else (q1, q3)
    count = rounds or (3 if cuda else 1)
    # 1.349 IQRs per standard deviation, were the times normal: a stand-in, said to be one
    return ({"min": low_, "max": high_, "mean": median, "stddev": spread / 1.349, "rounds": count, "median": median,
             "iqr": spread, "q1": q1, "q3": q3, "iqr_outliers": 0, "stddev_outliers": 0, "outliers": "0;0",
             "ld15iqr": low_, "hd15iqr": high_, "ops": 1 / median if median > 0 else 0.0, "total": median * count,
             "iterations": 1}, APPROXIMATE_CUDA if cuda else APPROXIMATE_BEFORE_V4)
