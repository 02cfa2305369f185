"""The profiles of a run in the report: phase tables, the model gap explained, memory, trace links."""

from __future__ import annotations

import html
import math
from pathlib import Path

import pandas as pd
from rich.console import Console

from bench.store.results import Run
from bench.report.tables import KEEP, Column, fitted_table
from bench.core.schema import ModelProfile, ProviderProfile

# Leaf phase -> the name a table shows. The C++ kernels' per-thread phases ("threads/gemm", the pair
# kernel's "pairs/threads/gemm") join the columns of the same name; a kernel's unmarked time inside
# its threads phase is its threads' wait.
PHASE_LABELS = {"check_nonfinite": "check", "pairs/self": "launch"}
ABOUT_PHASES = (
    "Phases: validate (argument checks, dispatch), route (masks to row groups, weight tiles or, in the C++ "
    "kernels, each block's active rows), mask_input (zeroing dropped input blocks), gather (active rows copied "
    "together), bias (the pair kernel's active output blocks set to their bias), gemm (the block GEMMs, with "
    "bias elsewhere), scatter (results written into the output), zero_fill (inactive output blocks), check (the "
    "non-finite check of kernels that zero instead of skip), wait (the C++ kernels' threads: fork, join and "
    "waiting for the slowest; their other phases are the mean over their threads), launch (the pair kernel's "
    "Python around its threads), rest (everything unmarked: Python, allocation). Each is the mean over the "
    "profiled calls in the middle half, and they add up to the instrumented call.")
MODEL_PARTS = ("gate", "linear", "activation")
INSTRUMENTED_SLACK = 1.1


def phase_label(path: str) -> str:
    """The name a table shows for a leaf phase path (see PHASE_LABELS)."""
    if path in PHASE_LABELS:
        return PHASE_LABELS[path]
    head, threads, leaf = path.rpartition("threads/")
    if threads and head in ("", "pairs/"):
        return "wait" if leaf == "self" else leaf
    return path


def grouped_phases(provider: ProviderProfile) -> dict[str, float]:
    """Seconds per displayed phase (phase_label), largest first."""
    grouped: dict[str, float] = {}
    for path, seconds in provider.phases.items():
        name = phase_label(path)
        grouped[name] = grouped.get(name, 0.0) + seconds
    return dict(sorted(grouped.items(), key=lambda item: -item[1]))


def _shares(provider: ProviderProfile, most: int = 4) -> str:
    phases = grouped_phases(provider)
    shown = [f"{name} {100 * s / provider.total_s:.0f}%" for name, s in list(phases.items())[:most]
             if s >= 0.005 * provider.total_s]
    return ", ".join(shown)


def _mb(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.2f}"


def kernel_phase_table(run: Run) -> pd.DataFrame:
    """One row per profiled case and provider: times, the phases' shares, memory, counters."""
    rows = []
    for prof in run.kernel_profiles:
        for p in prof.providers:
            rows.append({"case_id": prof.case_id, "provider": p.provider, "instrumented_ms": 1e3 * p.total_s,
                         "plain_ms": 1e3 * p.plain_s, "timed_ms": None if p.timed_s is None else 1e3 * p.timed_s,
                         "phases": _shares(p, most=10), "extra_memory_mb": _mb(p.extra_memory_bytes),
                         **{f"{event} per call": value for event, value in p.counters.items()},
                         "trace": p.trace})
        if prof.error:
            rows.append({"case_id": prof.case_id, "provider": "", "phases": f"profile failed: {prof.error}"})
    return pd.DataFrame(rows)


def model_parts(provider: ProviderProfile) -> dict[str, float]:
    """A model's phases per layer and part: "layer0/gate", "layer0/linear", "layer0/activation",
    "layer0/other", "output", "rest" (seconds per forward)."""
    parts: dict[str, float] = {}
    for path, seconds in provider.phases.items():
        head, _, tail = path.partition("/")
        if head.startswith("layer"):
            part = tail.split("/")[0]
            key = f"{head}/{part if part in MODEL_PARTS else 'other'}"
        else:
            key = head
        parts[key] = parts.get(key, 0.0) + seconds
    return parts


def model_gap(profile: ModelProfile) -> str:
    """Why the model's speedup differs from its block-sparse layers', in the profile's numbers."""
    by = {p.provider: p for p in profile.providers}
    if "dense" not in by or "ours" not in by:
        return ""
    dense, ours = model_parts(by["dense"]), model_parts(by["ours"])
    layers = sorted({k.split("/")[0] for k in dense if k.startswith("layer")}, key=lambda n: int(n[5:]))

    def linear(parts: dict) -> float:
        return sum(parts.get(f"{layer}/linear", 0.0) for layer in layers)

    def outside(parts: dict, total: float) -> float:
        return (total - linear(parts)) / total

    speedup = by["dense"].total_s / by["ours"].total_s
    layer_speedups = ", ".join(f"{layer} {dense.get(f'{layer}/linear', 0) / ours[f'{layer}/linear']:.2f}x"
                               for layer in layers if ours.get(f"{layer}/linear"))
    total = by["ours"].total_s
    pieces = {"gates": sum(ours.get(f"{layer}/gate", 0.0) for layer in layers),
              "activations": sum(ours.get(f"{layer}/activation", 0.0) for layer in layers),
              "output layer": ours.get("output", 0.0),
              "the rest": ours.get("rest", 0.0) + sum(ours.get(f"{layer}/other", 0.0) for layer in layers)}
    spent = ", ".join(f"{name} {100 * s / total:.0f}%" for name, s in pieces.items())
    timed = (f", {by['dense'].timed_s / by['ours'].timed_s:.2f}x when timed"
             if by["dense"].timed_s and by["ours"].timed_s else "")
    return (f"{profile.name} at batch {profile.batch}: {speedup:.2f}x the speed of its dense twin when profiled "
            f"({1e3 * total:.3g} ms a batch, the twin {1e3 * by['dense'].total_s:.3g}{timed}); its block-sparse layers "
            f"together {linear(dense) / linear(ours):.2f}x ({layer_speedups}); "
            f"{100 * outside(ours, total):.0f}% of its time is outside them ({spent}), "
            f"against {100 * outside(dense, by['dense'].total_s):.0f}% of the twin's.")


def model_phase_table(profile: ModelProfile) -> pd.DataFrame:
    by = {p.provider: model_parts(p) for p in profile.providers}
    keys = sorted({k for parts in by.values() for k in parts},
                  key=lambda k: (0, int(k.split("/")[0][5:]), k) if k.startswith("layer") else (1, 0, k))
    return pd.DataFrame([{"part": key, "dense_ms": 1e3 * by.get("dense", {}).get(key, math.nan),
                          "ours_ms": 1e3 * by.get("ours", {}).get(key, math.nan)} for key in keys])


def counters_note(run: Run) -> str:
    notes = {p.counters_note for prof in [*run.kernel_profiles, *run.model_profiles] for p in prof.providers
             if p.counters_note}
    return "; ".join(sorted(notes))


def print_profiles(run: Run, console: Console) -> None:
    if run.kernel_profiles:
        rows = []
        for prof in run.kernel_profiles:
            # The case id's sweep and the parts that vary, where the whole id does not fit.
            parts = prof.case_id.split("/")
            case = (prof.case_id, " ".join([parts[0], parts[5], *parts[7:]]) if len(parts) > 7 else prof.case_id)
            for p in prof.providers:
                # Instrumentation that slowed the call by over 10% shows: its cost is in the shares.
                slow = p.total_s > INSTRUMENTED_SLACK * p.plain_s
                shares = _shares(p)
                rows.append([case, p.provider, f"[yellow]{1e3 * p.total_s:.3g}[/yellow]" if slow else f"{1e3 * p.total_s:.3g}",
                             f"{1e3 * p.plain_s:.3g}", (shares, shares.split(", ")[0]), _mb(p.extra_memory_bytes)])
            if prof.error:
                rows.append([case, "", "", "", f"[red]profile failed: {prof.error}[/red]", ""])
        console.print(fitted_table(
            "where each case's time goes (profiled apart from its timing; ms per call; phases: share of the call)",
            [Column("case", KEEP, "left"), Column("provider", KEEP, "left"), Column("ms", KEEP), Column("plain ms", 60),
             Column("phases", KEEP, "left"), Column("extra MB", 40)],
            rows, console.width, files="phases.csv and the traces"))
        console.print(f"ms: the instrumented call (its phases add up to it); plain: the same call uninstrumented, "
                      f"in the same rounds; yellow: over {INSTRUMENTED_SLACK:g}x plain (a phase costs a few us).",
                      highlight=False)
    for prof in run.model_profiles:
        if prof.error:
            console.print(f"[red]profile of {prof.name} at batch {prof.batch} failed: {prof.error}[/red]")
        elif line := model_gap(prof):
            console.print(line, highlight=False)
    if (note := counters_note(run)) and (run.kernel_profiles or run.model_profiles):
        console.print(f"counters: {note}", highlight=False)


def profiles_html(run: Run, report_dir: Path) -> list[str]:
    """The report's profile sections, with each trace linked relative to the report's folder."""
    if not run.kernel_profiles and not run.model_profiles:
        return []
    parts = [f"<h2>Profiles</h2><p>{html.escape(ABOUT_PHASES)} Traces open in Perfetto (ui.perfetto.dev) or "
             "chrome://tracing; each shows every thread.</p>"]

    def link(trace: str) -> str:
        if not trace:
            return ""
        target = Path("..") / trace if report_dir == run.folder / "report" else (run.folder / trace).resolve()
        return f"<a href='{html.escape(str(target))}'>trace</a>"

    if run.kernel_profiles:
        # every cell escaped here, so that the trace links alone are markup
        table = kernel_phase_table(run).map(lambda v: html.escape(v) if isinstance(v, str) else v)
        table.columns = [html.escape(str(c)) for c in table.columns]
        if "trace" in table:
            table["trace"] = [link(t) if isinstance(t, str) else "" for t in table["trace"]]
        parts.append(table.to_html(index=False, escape=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
    for prof in run.model_profiles:
        parts.append(f"<h3>{html.escape(prof.name)}, batch {prof.batch}</h3>")
        if prof.error:
            parts.append(f"<p>profile failed: {html.escape(prof.error)}</p>")
            continue
        parts.append(f"<p>{html.escape(model_gap(prof))}</p>")
        parts.append(model_phase_table(prof).to_html(index=False, float_format=lambda v: f"{v:.4g}", na_rep=""))
        parts.append("<p>" + " ".join(f"{html.escape(p.provider)}: {link(p.trace)}, extra memory "
                                      f"{_mb(p.extra_memory_bytes)} MB." for p in prof.providers) + "</p>")
    if note := counters_note(run):
        parts.append(f"<p>Counters: {html.escape(note)}</p>")
    return parts
