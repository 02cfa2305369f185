"""Suite files: YAML, validated by pydantic into a Suite. Every mistake becomes one line naming the
file and the place in it (bench.cli.common.UserError)."""

from __future__ import annotations

import difflib
import math
import typing
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from bench.core.errors import UserError, read_text
from bench.core.model_providers import DEFAULT_MODEL_PROVIDERS, model_provider_names
from bench.core.providers import peer_names
from condcore.data import DATASETS
from condcore.models.condnet import ACTIVATIONS
from condcore.masks import MASK_KINDS
from condcore.ops import REGIMES
from condcore.ops.registry import BENCHMARKED_BACKENDS, BENCHMARKED_DTYPES, DEVICES
from condcore.policies import POLICIES
from condcore.train import LOSS_REDUCTIONS, OPTIMIZERS, TrainConfig

Device = Literal[DEVICES]  # from the kernel registry
DType = Literal[tuple(str(d).removeprefix("torch.") for d in BENCHMARKED_DTYPES)]  # from the kernel registry
Backend = Literal[BENCHMARKED_BACKENDS]  # from the kernel registry
Peer = Literal[peer_names()]  # from the provider registry
Regime = Literal[REGIMES]  # from dispatch
MaskSide = Literal["out", "both"]
MaskSource = Literal[(*MASK_KINDS, "trained")]  # condcore.masks' kinds, or a trained model's masks
InferenceDType = Literal["float32", "bfloat16", "float16"]
Policy = Literal[tuple(POLICIES)]  # from the policy registry
ModelProviderName = Literal[model_provider_names()]  # from the model provider registry
Dataset = Literal[DATASETS]  # from condcore.data

# Upper bounds: a count past them is a typo or a runaway script, and would otherwise end in an
# allocation traceback or a run that never finishes.
MAX_BATCH = 1 << 20
MAX_FEATURES = 1 << 20
MAX_REPEATS = 10_000
MAX_THREADS = 1024
MAX_EPOCHS = 10_000
MAX_CASES = 100_000  # kernel cases a suite may expand to
MAX_YAML_NODES = 100_000  # values in the parsed suite, aliases expanded (a YAML alias bomb stops here)
MAX_SEED = 2**63 - 1
MIN_LR, MAX_LR = 1e-9, 10.0

# Names become folder names and case-id parts: no separators, no dot-dot, bounded length.
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
Batch = Annotated[int, Field(gt=0, le=MAX_BATCH)]
Features = Annotated[int, Field(gt=0, le=MAX_FEATURES)]
MAX_WEIGHT = 1e6  # a loss weight or learning-rate multiplier past this is a typo, not an experiment
Weight = Annotated[float, Field(ge=0.0, le=MAX_WEIGHT, allow_inf_nan=False)]


def _each_fraction(values: list[float], name: str) -> list[float]:
    for v in values:
        if not (math.isfinite(v) and 0.0 < v <= 1.0):
            raise ValueError(f"{name} must be in (0, 1], got {v}")
    return values


class Strict(BaseModel):
    # strict: YAML's true is not the number 1, nor '4' or 2.0 a batch size.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Shape(Strict):
    in_features: Features
    out_features: Features


class KernelSweep(Strict):
    """One sweep of the block-sparse layer: the product of every list, then include/exclude."""

    name: Name
    device: list[Device] = Field(default=["cpu"], min_length=1)  # empty would sweep nothing
    dtype: list[DType] = Field(default=["float32"], min_length=1)
    backend: list[Backend] = Field(default=["auto"], min_length=1)
    # Peers timed beside ours and the dense paths (bench.core.providers.DENSE_CANDIDATES), each checked first (bench/providers.py).
    peers: list[Peer] = []
    regime: list[Regime] = Field(default=["auto"], min_length=1)
    batch: list[Batch] = Field(min_length=1)
    shape: list[Shape] = Field(min_length=1)
    block_size: list[Features] = Field(min_length=1)
    density: list[float] = Field(min_length=1)
    masks: list[MaskSide] = Field(default=["out"], min_length=1)
    mask_source: list[MaskSource] = Field(default=["iid"], min_length=1)
    # cold: the caches flushed before every timed call of every provider, as a layer of a deep model or a
    # server between requests finds its weights; warm: each sample's calls reuse what the one before left
    # in the caches (a layer called in a tight loop). CUDA times cold (do_bench flushes its L2), or warm
    # under CUDA graphs (suite's cuda_graph_max_batch); the row records which it had.
    cache: Literal["cold", "warm"] = "cold"
    # Extra points, each a full assignment of the swept keys; and partial assignments to drop.
    include: list[dict] = []
    exclude: list[dict] = []

    @field_validator("density")
    @classmethod
    def _density(cls, values: list[float]) -> list[float]:
        return _each_fraction(values, "density")

    @model_validator(mode="after")
    def _blocks_divide_layers(self) -> "KernelSweep":
        if self.cache == "warm" and "cuda" in self.device:
            raise ValueError("cache warm on device cuda: do_bench flushes the L2 before every call (CUDA graphs, "
                             "cuda_graph_max_batch, time warm)")
        for k in self.block_size:
            for s in self.shape:
                if s.in_features % k or s.out_features % k:
                    raise ValueError(
                        f"block_size {k} does not divide layer {s.in_features}x{s.out_features}"
                    )
        keys = set(SWEPT_KEYS)
        for kind, rules in (("include", self.include), ("exclude", self.exclude)):
            for i, rule in enumerate(rules):
                unknown = set(rule) - keys
                if unknown:
                    raise ValueError(f"{kind}[{i}] has unknown key(s) {sorted(unknown)}; known: {sorted(keys)}")
                for key, value in rule.items():
                    _check_value(f"{kind}[{i}].{key}", FIELD_TYPES[key], value)
        for i, extra in enumerate(self.include):
            # An included point is validated exactly like a swept one: as a sweep of that one point.
            point = {key: [extra[key] if key in extra else getattr(self, key)[0]] for key in SWEPT_KEYS}
            try:
                KernelSweep.model_validate({"name": self.name, **point})
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ValueError(f"include[{i}]: {first['msg'].removeprefix('Value error, ')}") from None
        return self


def _check_value(where: str, adapter: TypeAdapter, value) -> None:
    try:
        adapter.validate_python(value, strict=True)
    except ValidationError as exc:
        raise ValueError(f"{where}: {exc.errors()[0]['msg']}") from None


SWEPT_KEYS = ("device", "dtype", "backend", "regime", "batch", "shape", "block_size", "density", "masks", "mask_source")
# One value of each swept key: checks include and exclude rules (density's range per include), and gives
# an included value its type (`density: 1` is the float 1.0, as in a sweep).
FIELD_TYPES = {key: TypeAdapter(KernelSweep.model_fields[key].annotation.__args__[0]) for key in SWEPT_KEYS}


class ModelSweep(Strict):
    """Models to train (or reuse) on one dataset: every policy x tau (dense once)."""

    dataset: Dataset = "digits"
    data_dir: Optional[str] = None
    policies: list[Policy] = Field(default=list(POLICIES), min_length=1)
    # A tau is the target fraction of every hidden layer's blocks, or a list of one per hidden layer
    # (the paper's CIFAR-10 net: [0.25, 0.03125, 0.03125]).
    taus: list[Union[float, list[float]]] = Field(default=[0.5, 0.25, 0.1], min_length=1)
    hidden: list[Features] = Field(default=[1024, 1024], min_length=1, max_length=16)
    block_size: Features = 64
    epochs: int = Field(default=30, gt=0, le=MAX_EPOCHS)
    batch_size: Batch = TrainConfig.batch_size  # training minibatch
    lr: float = Field(default=TrainConfig.lr, ge=MIN_LR, le=MAX_LR)  # the network's Adam step; the policies' is 30x
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # training GEMMs; auto: bf16 where the device has it
    # The training recipe beyond these (condcore.train; the defaults are condbench's, the paper's code
    # used tanh, sgd with momentum 0, lambda_s [80, 40, 40], lambda_v [10, 20, 20], policy_lr_mult
    # [0.01, 0.5, 0.5], policy_l2 0.05). A weight is one number, or a list of one per hidden layer.
    activation: Literal[tuple(ACTIVATIONS)] = "relu"
    optimizer: Literal[OPTIMIZERS] = TrainConfig.optimizer
    momentum: float = Field(default=TrainConfig.momentum, ge=0.0, lt=1.0)  # sgd only
    lambda_s: Union[Weight, list[Weight]] = TrainConfig.lambda_s
    lambda_v: Union[Weight, list[Weight]] = TrainConfig.lambda_v
    policy_lr_mult: Union[Weight, list[Weight]] = TrainConfig.policy_lr_mult
    policy_l2: Weight = TrainConfig.policy_l2
    l2: Weight = TrainConfig.l2  # the network's weight decay
    # sum: the cross-entropy summed over the minibatch, as the paper's code does (its lr 1e-3 is then
    # its step); mean: condbench's
    loss_reduction: Literal[LOSS_REDUCTIONS] = TrainConfig.loss_reduction
    train_jobs: int = Field(default=0, ge=0, le=MAX_THREADS)  # models trained side by side, one thread each; 0: `threads`
    batches: list[Batch] = Field(default=[1, 256], min_length=1)
    # Where the section's models train and are timed, and the dtype their inference runs in (weights and
    # inputs cast; a 16-bit inference is checked against the float64 network on the masks it chose,
    # condcore.speed.check_inference). Training keeps `precision`.
    device: Device = "cpu"
    inference_dtype: InferenceDType = "float32"
    # The dense frontier: a dense net of each width (every hidden layer that wide), trained with the same
    # recipe and seeds as the dense net, timed with the rest; each CondNet is compared with the fastest
    # of them that is as accurate (bench.analysis.frontier).
    dense_widths: list[Features] = Field(default=[], max_length=32)
    # How each model's inference is timed (bench.core.model_providers), each checked first; `ours` always.
    providers: list[ModelProviderName] = Field(default=list(DEFAULT_MODEL_PROVIDERS), min_length=1)
    # Each seed trains every model again on its own train/test split; test errors are then reported
    # as a mean and interval over seeds. None: the suite's seed alone.
    seeds: Optional[list[Annotated[int, Field(ge=0, le=MAX_SEED)]]] = Field(default=None, min_length=1, max_length=100)
    # The policies trained with every seed of `seeds`; the others with its first seed only (a grid of
    # several seeds costs its size again per seed). None: every policy.
    seeded_policies: Optional[list[Policy]] = Field(default=None, min_length=1)
    # Speed is timed on the first seed's models (it follows the kernels and the realized density, which
    # every seed's row records); true: on every seed's.
    time_every_seed: bool = False
    trained_masks_policy: Policy = "reinforce"  # whose masks `mask_source: trained` kernel cases time

    @field_validator("taus")
    @classmethod
    def _taus(cls, values: list) -> list:
        for value in values:
            _each_fraction(value if isinstance(value, list) else [value], "tau")
        return values

    @model_validator(mode="after")
    def _blocks_divide_hidden(self) -> "ModelSweep":
        for width in self.hidden:
            if width % self.block_size:
                raise ValueError(f"block_size {self.block_size} does not divide hidden width {width}")
        layers = len(self.hidden)
        for name in ("taus", "lambda_s", "lambda_v", "policy_lr_mult"):
            values = getattr(self, name) if name == "taus" else [getattr(self, name)]
            if stray := [v for v in values if isinstance(v, list) and len(v) != layers]:
                raise ValueError(f"{name}: {stray[0]} has {len(stray[0])} values for {layers} hidden layers")
        if len(set(self.dense_widths)) != len(self.dense_widths):
            raise ValueError(f"dense_widths must differ from each other, got {self.dense_widths}")
        if "ours" not in self.providers:
            raise ValueError(f"providers must include ours (condbench's own inference), got {self.providers}")
        if len(set(self.providers)) != len(self.providers):
            raise ValueError(f"providers must differ from each other, got {self.providers}")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must differ from each other, got {self.seeds}")
        if self.seeded_policies is not None:
            if self.seeds is None:
                raise ValueError("seeded_policies needs seeds")
            if stray := [p for p in self.seeded_policies if p not in self.policies]:
                raise ValueError(f"seeded_policies {stray} are not among policies {self.policies}")
        return self


class Suite(Strict):
    name: Name
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    repeats: int = Field(default=15, gt=0, le=MAX_REPEATS)  # CPU timing rounds, interleaved
    threads: int = Field(default=2, gt=0, le=MAX_THREADS)
    # On CUDA, kernel cases with a batch up to this are timed by CUDA-graph replay (0: never).
    cuda_graph_max_batch: int = Field(default=0, ge=0, le=MAX_BATCH)
    kernels: list[KernelSweep] = []
    # One models section, or a list of them, each its own grid (the paper suite: one per configuration).
    # Sections on one dataset are timed together, in the same interleaved rounds, and reported together.
    models: list[ModelSweep] = Field(default=[], min_length=1)

    @field_validator("models", mode="before")
    @classmethod
    def _one_or_several(cls, value):
        return [] if value is None else [value] if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _trained_needs_models(self) -> "Suite":
        for sweep in self.kernels:
            if "trained" in sweep.mask_source and not self.models:
                raise ValueError(f"sweep {sweep.name!r} uses mask_source 'trained' but the suite has no models section")
        first: dict[str, int] = {}
        for i, section in enumerate(self.models):
            j = first.setdefault(section.dataset, i)
            for key in ("data_dir", "batches", "providers", "device", "inference_dtype"):
                if getattr(section, key) != getattr(self.models[j], key):
                    raise ValueError(f"models[{i}] and models[{j}] are both on {section.dataset} but their {key} "
                                     f"differ ({getattr(section, key)} and {getattr(self.models[j], key)}): "
                                     "sections on one dataset are timed together and must share it")
        names = [s.name for s in self.kernels]
        if len(names) != len(set(names)):
            raise ValueError("sweep names must be unique")
        points = sum(math.prod(len(getattr(s, key)) for key in SWEPT_KEYS) + len(s.include) for s in self.kernels)
        if points > MAX_CASES:
            raise ValueError(f"the kernel sweeps expand to {points} cases, more than {MAX_CASES}; split the suite")
        return self


def _where(error: dict) -> str:
    where = ""
    for part in error["loc"]:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return where or "(top level)"


def _count_nodes(value, budget: int) -> int:
    """Values in a parsed YAML document, shared (aliased) ones counted each time they are reached, up to
    budget: past it the document stands for more than any suite needs."""
    seen, stack = 0, [value]
    while stack and seen <= budget:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error: silently taking the last
    `density:` of two would run a suite other than the one its author reads."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *anchor`: its keys may be overridden here
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                continue  # an unhashable key is the schema's to refuse
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key `{key}` appears twice in one mapping",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_suite(text: str, source: str = "<suite>") -> Suite:
    if "\0" in text:
        raise UserError(f"{source}: holds a NUL character; a suite is a YAML text file")
    try:
        raw = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader that refuses duplicate keys
    except RecursionError:
        raise UserError(f"{source}: nested too deep to be a suite") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{source}:{where}: bad YAML: {problem}") from None
    if not isinstance(raw, dict):
        raise UserError(f"{source}: a suite is a YAML mapping with at least `name:`")
    if _count_nodes(raw, MAX_YAML_NODES) > MAX_YAML_NODES:
        raise UserError(f"{source}: expands to more than {MAX_YAML_NODES} values (YAML aliases included); "
                        "a suite needs far fewer")
    try:
        return Suite.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        if isinstance(raw.get("models"), dict):  # one section: its mistakes are at models.key, not models[0].key
            errors = [{**e, "loc": e["loc"][:1] + e["loc"][2:]} if e["loc"][:2] == ("models", 0) else e for e in errors]
        # A misspelled key also leaves the key it meant missing: say the unknown one, the cause, first.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        if first["type"] == "extra_forbidden":
            key = str(first["loc"][-1])
            close = difflib.get_close_matches(key, [k for k in _known_keys() if k != key], n=1)
            hint = f" (did you mean `{close[0]}`?)" if close else ""
            where = _where({**first, "loc": first["loc"][:-1]})
            raise UserError(f"{source}: {where}: unknown key `{key}`{hint}{more}") from None
        message = first["msg"].removeprefix("Value error, ")
        raise UserError(f"{source}: {_where(first)}: {message}{more}") from None


def _known_keys() -> list[str]:
    """Every key a suite's sections accept (the fields of its models), for "did you mean"."""
    keys, stack = set(), [Suite]
    while stack:
        model = stack.pop()
        for name, field in model.model_fields.items():
            keys.add(name)
            for inner in typing.get_args(field.annotation) or (field.annotation,):
                for candidate in typing.get_args(inner) or (inner,):
                    if isinstance(candidate, type) and issubclass(candidate, BaseModel) and candidate not in stack:
                        stack.append(candidate)
    return sorted(keys)


def suite_text(path: Path) -> str:
    """The text of a suite file, or one line saying why it cannot be read."""
    if not path.exists():
        raise UserError(f"{path}: no such suite file")
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a suite file")
    if not path.is_file():  # a FIFO or a device would block the read, or never end it
        raise UserError(f"{path}: not a regular file; a suite is a YAML text file")
    return read_text(path, "suite file")


def load_suite(path: Path) -> Suite:
    return parse_suite(suite_text(path), str(path))
