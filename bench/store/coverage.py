"""What a run folder was asked to measure, and what of it is missing: its suite and shard (and the --case
patterns it was started with) name its kernel cases and models; its rows say which it finished. A merge
of shards, or a regression check, must not pass part of a run off as the whole."""

from __future__ import annotations

from dataclasses import dataclass

from bench.plan.cases import kernel_cases, model_cases, shard_cases
from bench.store.results import Run
from bench.plan.suite import parse_suite


@dataclass(frozen=True)
class Coverage:
    missing_kernels: tuple[str, ...]
    missing_models: tuple[str, ...]

    @property
    def complete(self) -> bool:
        return not self.missing_kernels and not self.missing_models

    def describe(self, run_id: str) -> str:
        parts = [f"{len(self.missing_kernels)} kernel case(s)" if self.missing_kernels else "",
                 f"{len(self.missing_models)} model(s)" if self.missing_models else ""]
        first = (self.missing_kernels or self.missing_models)[0]
        return f"{run_id} lacks {' and '.join(p for p in parts if p)} of its shard (first: {first}; killed?)"


def shard_of(run: Run) -> tuple[int, int]:
    """The run's (index, count) (bench.store.run_folder.read_env has checked it)."""
    index, count = run.env.get("shard", [0, 1])
    return index, count


def coverage(run: Run, suite_text: str) -> Coverage:
    """Which of the cases the run's suite, shard and case filter ask for have no row in the run."""
    suite = parse_suite(suite_text, str(run.folder / "suite.yaml"))
    kernels, models = shard_cases(kernel_cases(suite), model_cases(suite), *shard_of(run), run.env.get("case_filter"),
                                  str(run.folder))
    have_kernels = {r.case_id for r in run.kernel_rows}
    have_models = {r.name for r in run.model_rows}
    return Coverage(tuple(c.case_id for c in kernels if c.case_id not in have_kernels),
                    tuple(m.name for m in models if m.name not in have_models))
