"""Suite -> the list of cases to run, deterministic and shardable."""

from __future__ import annotations

import fnmatch
import itertools
import os
from dataclasses import asdict, dataclass

import torch

from bench.core.errors import UserError
from bench.machine.contention import run_cpus
from bench.plan.models import ModelCase, Recipe, model_grid, number_key
from bench.plan.suite import FIELD_TYPES, SWEPT_KEYS, KernelSweep, ModelSweep, Suite


@dataclass(frozen=True)
class KernelCase:
    sweep: str
    device: str
    dtype: str
    backend: str
    regime: str
    batch: int
    in_features: int
    out_features: int
    block_size: int
    density: float  # target; a trained-mask case records its model's tau
    masks: str  # "out" or "both"
    mask_source: str  # "iid", "clustered" or "trained"
    model: str = ""  # the trained model whose test-set masks are timed (mask_source "trained")
    cache: str = "cold"  # the sweep's: caches flushed before every timed call, or warm

    @property
    def case_id(self) -> str:
        source = f"trained:{self.model}" if self.model else self.mask_source
        return (f"{self.sweep}/{self.device}/{self.dtype}/{self.backend}/{self.regime}/B{self.batch}/"
                f"{self.in_features}x{self.out_features}/k{self.block_size}/d{number_key(self.density)}/{self.masks}/{source}")

    def to_dict(self) -> dict:
        """The case as a result row names it: the requested density, or a trained case's tau, by name."""
        fields = asdict(self)
        density = fields.pop("density")
        trained = self.mask_source == "trained"
        return {"case_id": self.case_id, **fields, "requested_density": None if trained else density,
                "tau": density if trained else None}


def _matches(assignment: dict, rule: dict) -> bool:
    for key, value in rule.items():
        got = assignment[key]
        if key == "shape":
            value = (value["in_features"], value["out_features"]) if isinstance(value, dict) else tuple(value)
            got = (got.in_features, got.out_features)
        if got != value:
            return False
    return True


def _assignments(sweep: KernelSweep) -> list[dict]:
    values = [getattr(sweep, key) for key in SWEPT_KEYS]
    points = [dict(zip(SWEPT_KEYS, combo)) for combo in itertools.product(*values)]
    for extra in sweep.include:
        # Keys an include leaves out take the sweep's first value.
        point = {key: getattr(sweep, key)[0] for key in SWEPT_KEYS}
        point.update({key: FIELD_TYPES[key].validate_python(value) for key, value in extra.items()})
        points.append(point)
    return [p for p in points if not any(_matches(p, rule) for rule in sweep.exclude)]


def model_sections(suite: Suite) -> list[tuple[ModelSweep, list[ModelCase]]]:
    """Each models section with its grid of cases; a case two sections both hold (a dense net of a width
    both have) is the first one's."""
    as_weights = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731
    seen: set[str] = set()
    sections = []
    for m in suite.models:
        recipe = Recipe(m.activation, m.optimizer, m.momentum, as_weights(m.lambda_s), as_weights(m.lambda_v),
                        as_weights(m.policy_lr_mult), m.policy_l2, m.l2, m.loss_reduction)
        grid = model_grid(m.dataset, m.policies, m.taus, tuple(m.hidden), m.block_size, m.epochs,
                          section_seeds(suite, m), m.precision, m.seeded_policies, batch_size=m.batch_size, lr=m.lr,
                          dense_widths=m.dense_widths, recipe=recipe, device=m.device)
        sections.append((m, [case for case in grid if case.name not in seen]))
        seen.update(case.name for case in grid)
    return sections


def model_cases(suite: Suite) -> list[ModelCase]:
    return [case for _, cases in model_sections(suite) for case in cases]


def section_seeds(suite: Suite, section: ModelSweep) -> list[int]:
    """The seeds a section trains each model with: its `seeds`, else the suite's seed. Speed is timed on
    the first one's models (unless `time_every_seed`)."""
    return list(section.seeds) if section.seeds else [suite.seed]


def kernel_cases(suite: Suite) -> list[KernelCase]:
    cases: dict[str, KernelCase] = {}
    # Trained-mask cases time the masks of the first seed's models: one layer per policy x tau is enough.
    trained = [c for m, cases in model_sections(suite) for c in cases
               if c.policy == m.trained_masks_policy and c.seed == section_seeds(suite, m)[0]]
    for sweep in suite.kernels:
        for p in _assignments(sweep):
            if p["mask_source"] == "trained":
                # Shape, block size and density come from each trained model's own layer.
                for model in trained:
                    hidden = model.hidden
                    case = KernelCase(sweep.name, p["device"], p["dtype"], p["backend"], p["regime"], p["batch"],
                                      hidden[0] if len(hidden) > 1 else 0, hidden[-1], model.block_size,
                                      model.layer_taus[-1] if model.layer_taus else model.tau,
                                      "both" if len(hidden) > 1 else "out", "trained", model.name, sweep.cache)
                    cases[case.case_id] = case
                continue
            shape = p["shape"]
            case = KernelCase(sweep.name, p["device"], p["dtype"], p["backend"], p["regime"], p["batch"],
                              shape.in_features, shape.out_features, p["block_size"], p["density"], p["masks"],
                              p["mask_source"], cache=sweep.cache)
            cases[case.case_id] = case
    return sorted(cases.values(), key=lambda c: c.case_id)


def check_threads(threads: int, what: str) -> None:
    cpus = len(run_cpus())
    if threads > cpus:
        # More threads than cores: OpenMP threads then take turns on a core, and the timings measure that.
        raise UserError(f"{what} {threads} is more than the {cpus} CPU(s) this process may use")


def check_runnable(cases: list[KernelCase], source: str, threads: int = 1) -> None:
    """Impossible requests on this machine stop the run before it starts, in one line."""
    if any(c.device == "cuda" for c in cases) and not torch.cuda.is_available():
        raise UserError(f"{source}: asks for device cuda, but CUDA is not available on this machine")
    check_threads(threads, f"{source}: threads")
    if any(c.backend == "triton" and c.device == "cpu" for c in cases) and os.environ.get("TRITON_INTERPRET") != "1":
        raise UserError(f"{source}: backend triton on device cpu needs TRITON_INTERPRET=1 (the slow interpreter)")


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text}: need 0 <= i < n")
    return index, count


def shard(items: list, index: int, count: int) -> list:
    """Deterministic slice: items are already sorted by id, so shard i takes every n-th from i."""
    return items[index::count]


def shard_cases(kernels: list[KernelCase], models: list[ModelCase], index: int, count: int,
                patterns: list[str] | None, source: str) -> tuple[list[KernelCase], list[ModelCase]]:
    """What shard index/count of a suite's cases runs: its slice, narrowed to `patterns` where given (a
    run's plan, and what bench.store.coverage checks a finished run against)."""
    kernels, models = shard(kernels, index, count), shard(models, index, count)
    return select_cases(kernels, models, patterns, source) if patterns else (kernels, models)


def select_cases(kernels: list[KernelCase], models: list[ModelCase], patterns: list[str],
                 source: str) -> tuple[list[KernelCase], list[ModelCase]]:
    """The kernel cases whose id and the models whose name match one of `patterns` (exact ids or fnmatch
    globs); a pattern that matches nothing is a user error, with what ids look like."""
    def matches(name: str, pattern: str) -> bool:
        return name == pattern or fnmatch.fnmatchcase(name, pattern)

    for pattern in patterns:
        if not any(matches(c.case_id, pattern) for c in kernels) and not any(matches(m.name, pattern) for m in models):
            raise UserError(f"{source}: --case {pattern!r} matches no kernel case id and no model name "
                            "(ids look like large-batch/cpu/float32/auto/auto/B512/2048x2048/k128/d0.5/out/iid, "
                            "names like digits-reinforce-tau0.25-h2048x2048-...-s0; globs such as "
                            "'large-batch/*' or '*/B1/*' work)")
    return ([c for c in kernels if any(matches(c.case_id, p) for p in patterns)],
            [m for m in models if any(matches(m.name, p) for p in patterns)])
