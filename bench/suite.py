"""Suite files: YAML, validated by pydantic into a Suite. Every mistake becomes one line naming the
file and the place in it (bench.cli_common.UserError)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.cli_common import UserError

Device = Literal["cpu", "cuda"]
DType = Literal["float32", "float16", "bfloat16"]
Backend = Literal["auto", "torch", "triton"]
Regime = Literal["auto", "grouped", "union"]
MaskSide = Literal["out", "both"]
MaskSource = Literal["iid", "clustered", "trained"]
Policy = Literal["dense", "random", "reinforce", "straight-through", "topk"]
Dataset = Literal["digits", "mnist", "cifar10", "svhn"]

def _each_positive(values: list[int], name: str = "") -> list[int]:
    for v in values:
        if v <= 0:
            raise ValueError(f"{name} must be positive, got {v}".lstrip())
    return values


def _each_fraction(values: list[float], name: str) -> list[float]:
    for v in values:
        if not 0.0 < v <= 1.0:
            raise ValueError(f"{name} must be in (0, 1], got {v}")
    return values


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Shape(Strict):
    in_features: int = Field(gt=0)
    out_features: int = Field(gt=0)


class KernelSweep(Strict):
    """One sweep of the block-sparse layer: the product of every list, then include/exclude."""

    name: str
    device: list[Device] = ["cpu"]
    dtype: list[DType] = ["float32"]
    backend: list[Backend] = ["auto"]
    regime: list[Regime] = ["auto"]
    batch: list[int] = Field(min_length=1)
    shape: list[Shape] = Field(min_length=1)
    block_size: list[int] = Field(min_length=1)
    density: list[float] = Field(min_length=1)
    masks: list[MaskSide] = ["out"]
    mask_source: list[MaskSource] = ["iid"]
    # Extra points, each a full assignment of the swept keys; and partial assignments to drop.
    include: list[dict] = []
    exclude: list[dict] = []

    @field_validator("batch", "block_size")
    @classmethod
    def _positive(cls, values: list[int]) -> list[int]:
        return _each_positive(values)

    @field_validator("density")
    @classmethod
    def _density(cls, values: list[float]) -> list[float]:
        return _each_fraction(values, "density")

    @model_validator(mode="after")
    def _blocks_divide_layers(self) -> "KernelSweep":
        for k in self.block_size:
            for s in self.shape:
                if s.in_features % k or s.out_features % k:
                    raise ValueError(
                        f"block_size {k} does not divide layer {s.in_features}x{s.out_features}"
                    )
        keys = set(SWEPT_KEYS)
        for rule in [*self.include, *self.exclude]:
            unknown = set(rule) - keys
            if unknown:
                raise ValueError(f"include/exclude rule has unknown key(s) {sorted(unknown)}; known: {sorted(keys)}")
        return self


SWEPT_KEYS = ("device", "dtype", "backend", "regime", "batch", "shape", "block_size", "density", "masks", "mask_source")


class ModelSweep(Strict):
    """Models to train (or reuse) on one dataset: every policy x tau (dense once)."""

    dataset: Dataset = "digits"
    data_dir: Optional[str] = None
    policies: list[Policy] = ["dense", "random", "reinforce", "straight-through", "topk"]
    taus: list[float] = [0.5, 0.25, 0.1]
    hidden: list[int] = [1024, 1024]
    block_size: int = Field(default=64, gt=0)
    epochs: int = Field(default=30, gt=0)
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # training GEMMs; auto: bf16 where the CPU has it
    train_jobs: int = Field(default=0, ge=0)  # models trained side by side, one thread each; 0: `threads`
    batches: list[int] = [1, 256]
    trained_masks_policy: Policy = "reinforce"  # whose masks `mask_source: trained` kernel cases time

    @field_validator("taus")
    @classmethod
    def _taus(cls, values: list[float]) -> list[float]:
        return _each_fraction(values, "tau")

    @model_validator(mode="after")
    def _blocks_divide_hidden(self) -> "ModelSweep":
        for width in self.hidden:
            if width <= 0 or width % self.block_size:
                raise ValueError(f"block_size {self.block_size} does not divide hidden width {width}")
        _each_positive(self.batches, "batch")
        return self


class Suite(Strict):
    name: str
    seed: int = 0
    repeats: int = Field(default=15, gt=0)  # CPU timing rounds, interleaved
    threads: int = Field(default=2, gt=0)
    # On CUDA, kernel cases with a batch up to this are timed by CUDA-graph replay (0: never).
    cuda_graph_max_batch: int = Field(default=0, ge=0)
    kernels: list[KernelSweep] = []
    models: Optional[ModelSweep] = None

    @model_validator(mode="after")
    def _trained_needs_models(self) -> "Suite":
        for sweep in self.kernels:
            if "trained" in sweep.mask_source and self.models is None:
                raise ValueError(f"sweep {sweep.name!r} uses mask_source 'trained' but the suite has no models section")
        names = [s.name for s in self.kernels]
        if len(names) != len(set(names)):
            raise ValueError("sweep names must be unique")
        return self


def _where(error: dict) -> str:
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "(top level)"


def parse_suite(text: str, source: str = "<suite>") -> Suite:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{source}:{where}: bad YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a suite is a YAML mapping with at least `name:`")
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        message = first["msg"].removeprefix("Value error, ")
        raise UserError(f"{source}: {_where(first)}: {message}{more}") from None


def load_suite(path: Path) -> Suite:
    if not path.exists():
        raise UserError(f"{path}: no such suite file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a suite file")
    return parse_suite(path.read_text(), str(path))
