"""ReportData: every analysis a run's reports show, computed once from the run. The terminal report, the
HTML page and the markdown summary (bench.report.terminal, .html, .markdown) render it and compute
nothing of their own, so the three say the same thing and a fourth rendering (JSON, say) is one more
function of it."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.analysis.break_even import break_even
from bench.analysis.frontier import reference_hidden
from bench.analysis.goals import check_goals
from bench.analysis.models_summary import model_summary, speed_summary
from bench.analysis.rows import peer_summary
from bench.analysis.summary import best_configurations, goal_lines, model_answers
from bench.machine.contention import BUSY_CORES
from bench.store.results import Run, per_dataset


@dataclass(frozen=True)
class DatasetPart:
    """One dataset's models (a run of one dataset, or none, is one part: the run itself)."""

    dataset: str
    run: Run  # the run's part of this dataset (bench.store.results.per_dataset)
    fastest: pd.DataFrame  # the fastest model of all within each test-error budget
    iso: pd.DataFrame  # each CondNet against the fastest dense net as accurate
    twin: dict  # each timed family's speedup over its same-shape dense twin, by (policy, tau, hidden, batch)
    reference: str | None  # the dense width the error changes are measured against
    goal: list[str]  # the moonshot's verdict per batch
    models: pd.DataFrame  # one row per model family (bench.analysis.models_summary)
    speeds: pd.DataFrame  # each family's speedup per batch


@dataclass(frozen=True)
class ReportData:
    run: Run
    parts: list[DatasetPart]
    best: pd.DataFrame  # the fastest block size per batch, masks and density (bench.analysis.summary)
    goals: pd.DataFrame  # the speed goals (bench.analysis.goals)
    break_even: pd.DataFrame  # where sparse stops beating dense (bench.analysis.break_even)
    peers: pd.DataFrame  # per case with peers: ours against each (bench.analysis.rows.peer_summary)
    load_warning: str  # one sentence when the run shared its machine, else ""
    wall_time: str  # where the run's wall time went, or ""
    roofline: str  # the machine's measured roofline in one line, or ""

    @property
    def several_datasets(self) -> bool:
        return len(self.parts) > 1


def report_data(run: Run) -> ReportData:
    """Every analysis of the run, once."""
    parts = []
    for dataset, part in per_dataset(run):
        fastest, iso, twin = model_answers(part)
        models = model_summary(part.models)
        speeds = speed_summary(part.models, part.model_speeds) if not models.empty else pd.DataFrame()
        parts.append(DatasetPart(dataset, part, fastest, iso, twin,
                                 reference_hidden(part.models) if not part.models.empty else None, goal_lines(iso),
                                 models, speeds))
    return ReportData(run, parts, best_configurations(run.kernels), check_goals(run.kernels), break_even(run.kernels),
                      peer_summary(run), load_warning(run), wall_time_line(run), roofline_line(run))


def load_warning(run: Run) -> str:
    """One sentence when the run shared its CPUs (at the start or during cases), else ""."""
    tables = [t for t in (run.kernels, run.models) if not t.empty and "contended" in t]
    flags = [set(str(f).split(",")) if isinstance(f, str) else set() for t in tables
             for f in (t["load_flags"] if "load_flags" in t else [None] * len(t))]
    contended = [bool(c) for t in tables for c in t["contended"].fillna(False)]
    # a row flagged only for sharing the GPU is counted there, not as CPU time taken
    flagged = sum(c and bool(f - {"gpu_shared", "noisy"} or not f) for c, f in zip(contended, flags))
    shared_gpu = sum("gpu_shared" in f for f in flags)
    total = len(run.kernels) + len(run.models)
    start = run.env.get("load_at_start") or {}
    parts = []
    if start.get("others_cores", 0.0) >= BUSY_CORES:
        parts.append(f"other processes used {start['others_cores']:.2f} CPU(s) when it started")
    if flagged:
        parts.append(f"{flagged} of {total} cases ran while other processes or the hypervisor took CPU time "
                     "(flagged busy / oversubscribed / steal)")
    if shared_gpu:
        parts.append(f"{shared_gpu} of {total} cases were timed while other processes ran on the GPU "
                     "(flagged gpu_shared)")
    if not parts:
        return ""
    return ("This run shared its machine: " + "; ".join(parts) +
            ". Those timings are slow and noisy; do not trust their speedups. Rerun on a quiet machine "
            "(`--wait-quiet SECONDS`) or with `--free-cores-only`.")


PHASE_NAMES = {"training": "training", "model_timing": "model timing", "kernels": "kernels",
               "environment": "environment", "waiting_for_quiet": "waiting for quiet", "load_check": "load check"}


def wall_time_line(run: Run) -> str:
    """Where the run's wall time went (every invocation of it added up; the report is not in it), or ""."""
    if shards := run.env.get("shard_envs"):  # a merged run: its shards' times are their own
        hosts = sorted({str(env.get("hostname", "?")) for env in shards if isinstance(env, dict)})
        return (f"merged from {len(shards)} shard run(s), measured on {len(hosts)} machine(s) "
                f"({', '.join(hosts)})")
    sessions = run.env.get("wall_seconds") or []
    if not sessions:
        return ""
    totals: dict[str, float] = {}
    for session in sessions:
        for name, seconds in session.items():
            totals[name] = totals.get(name, 0.0) + seconds
    phases = ", ".join(f"{PHASE_NAMES.get(name, name)} {_duration(s)}" for name, s in
                       sorted(totals.items(), key=lambda item: -item[1]) if name != "total" and s >= 0.5)
    over = f" over {len(sessions)} invocations" if len(sessions) > 1 else ""
    return f"measured in {_duration(totals.get('total', 0.0))}{over}" + (f": {phases}" if phases else "")


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"


def roofline_line(run: Run) -> str:
    """This machine's measured roofline in one line, or "" for runs before peaks were measured."""
    parts = []
    for device, roof in (run.env.get("peaks") or {}).items():
        gemms = ", ".join(f"{d} GEMM {f / 1e9:.0f} GFLOP/s (n = {roof['gemm_size'][d]})" for d, f in roof["gemm_flops"].items())
        cached = (f"; in the last-level cache ({roof['llc_bytes'] / 2**20:.0f} MiB) copy "
                  f"{roof['cached_copy_Bps'] / 1e9:.0f} GB/s, triad {roof['cached_triad_Bps'] / 1e9:.0f} GB/s"
                  if "cached_copy_Bps" in roof else "")
        parts.append(f"{device}: {gemms}; STREAM copy {roof['copy_Bps'] / 1e9:.1f} GB/s, triad "
                     f"{roof['triad_Bps'] / 1e9:.1f} GB/s{cached}")
    return ("measured roofline: " + "; ".join(parts)) if parts else ""
