"""A suite's models as cases: what each trains (dataset, policy, tau, widths, recipe) and the name its
checkpoint and rows go by; the grid of a models section with its dense frontier."""

from __future__ import annotations

import math
from dataclasses import dataclass

from condcore.models import CondNetConfig
from condcore.models.condnet import tau_fields
from condcore.train import TrainConfig


def number_key(value: float) -> str:
    """A number as names and ids spell it: short (`:g`, so 0.5 and 0.001 read as before) where that is
    exact, else every digit: 0.0010000001 must not name the checkpoints trained at 0.001, nor two
    densities 1e-7 apart one case."""
    short = f"{value:g}"
    return short if float(short) == value else repr(float(value))


Weights = float | tuple[float, ...]  # one for every hidden layer, or one per hidden layer


def _spelled(value: Weights) -> str:
    return ",".join(map(number_key, value)) if isinstance(value, tuple) else number_key(value)


@dataclass(frozen=True)
class Recipe:
    """The training options beyond a case's basics, as the paper's code sets them (tanh, plain SGD,
    per-layer regularizer weights and policy learning rates, L2 on the policies). The defaults are
    condbench's recipe and name nothing: models trained before these options existed keep their names."""

    activation: str = "relu"
    optimizer: str = TrainConfig.optimizer
    momentum: float = TrainConfig.momentum
    lambda_s: Weights = TrainConfig.lambda_s
    lambda_v: Weights = TrainConfig.lambda_v
    policy_lr_mult: Weights = TrainConfig.policy_lr_mult
    policy_l2: float = TrainConfig.policy_l2
    l2: float = TrainConfig.l2
    loss_reduction: str = TrainConfig.loss_reduction

    # each option's short name in a model's name, where it differs from the default
    KEYS = {"activation": "", "optimizer": "", "momentum": "mom", "lambda_s": "ls", "lambda_v": "lv",
            "policy_lr_mult": "plr", "policy_l2": "pl2", "l2": "l2", "loss_reduction": ""}

    @property
    def key(self) -> str:
        parts = [value if isinstance(value, str) else short + _spelled(value)
                 for name, short in self.KEYS.items() if (value := getattr(self, name)) != getattr(Recipe, name)
                 and not (name == "momentum" and self.optimizer != "sgd")]
        return "".join(f"-{part}" for part in parts)

    def train_options(self) -> dict:
        as_list = lambda v: list(v) if isinstance(v, tuple) else v  # noqa: E731
        return {"optimizer": self.optimizer, "momentum": self.momentum, "lambda_s": as_list(self.lambda_s),
                "lambda_v": as_list(self.lambda_v), "policy_lr_mult": as_list(self.policy_lr_mult),
                "policy_l2": self.policy_l2, "l2": self.l2, "loss_reduction": self.loss_reduction}


@dataclass(frozen=True)
class ModelCase:
    dataset: str
    policy: str
    tau: float  # the target fraction of all hidden blocks (with layer_taus, derived from them)
    hidden: tuple[int, ...]
    block_size: int
    epochs: int
    seed: int = 0
    precision: str = "auto"
    batch_size: int = TrainConfig.batch_size
    lr: float = TrainConfig.lr
    layer_taus: tuple[float, ...] | None = None  # one target per hidden layer (the paper's 1/4, 1/32, 1/32)
    recipe: Recipe = Recipe()
    device: str = "cpu"  # where it trains; a model trained on the CPU names no device, as before devices

    @property
    def name(self) -> str:
        hidden = "x".join(map(str, self.hidden))
        tau = _spelled(self.layer_taus) if self.layer_taus is not None else number_key(self.tau)
        device = "" if self.device == "cpu" else f"-{self.device}"
        return (f"{self.dataset}-{self.policy}-tau{tau}-h{hidden}-k{self.block_size}-e{self.epochs}"
                f"-b{self.batch_size}-lr{number_key(self.lr)}-{self.precision}{self.recipe.key}{device}-s{self.seed}")

    def model_config(self, n_features: int, n_classes: int) -> CondNetConfig:
        tau = 1.0 if self.policy == "dense" else self.layer_taus if self.layer_taus is not None else self.tau
        return CondNetConfig(n_features, n_classes, hidden=list(self.hidden), block_size=self.block_size,
                             policy=self.policy, activation=self.recipe.activation, **tau_fields(tau))


def as_tau(value: float | list[float] | tuple[float, ...], hidden: tuple[int, ...], block_size: int
           ) -> tuple[float, tuple[float, ...] | None]:
    """A suite's tau entry as (the headline tau, the per-layer taus or None): a list is one per layer."""
    config = CondNetConfig(1, 1, hidden=list(hidden), block_size=block_size, **tau_fields(value))
    return config.tau, None if config.layer_taus is None else tuple(config.layer_taus)


def model_grid(dataset: str, policies: list[str], taus: list[float | list[float]], hidden: tuple[int, ...],
               block_size: int, epochs: int, seeds: list[int], precision: str,
               seeded_policies: list[str] | None = None, *, batch_size: int = TrainConfig.batch_size,
               lr: float = TrainConfig.lr, dense_widths: list[int] | tuple[int, ...] = (),
               recipe: Recipe = Recipe(), device: str = "cpu") -> list[ModelCase]:
    """Every policy x tau (the dense net once, at tau 1), once per seed; the policies outside
    `seeded_policies` (None: none outside) with the first seed only. Then the dense frontier: a dense net
    of each of `dense_widths` (every hidden layer that wide), with every seed the dense net has, the
    same recipe (a width the grid's dense net already has is that net). The first seed's grid comes first."""
    seeded = set(policies if seeded_policies is None else seeded_policies)

    def case(policy: str, tau: float | list[float], seed: int) -> ModelCase:
        headline, layer_taus = as_tau(tau, hidden, block_size)
        return ModelCase(dataset, policy, headline, hidden, block_size, epochs, seed, precision, batch_size, lr,
                         layer_taus, recipe, device)

    grid = [case(policy, tau, seed) for i, seed in enumerate(seeds) for policy in policies if i == 0 or policy in seeded
            for tau in ([1.0] if policy == "dense" else taus)]
    dense_seeds = seeds if seeded_policies is None or "dense" in seeded_policies else seeds[:1]
    names = {case.name for case in grid}
    # A dense net's block size only names it (no gate reads it); it must divide the width.
    frontier = [ModelCase(dataset, "dense", 1.0, (width,) * len(hidden), math.gcd(block_size, width), epochs, seed,
                          precision, batch_size, lr, recipe=recipe, device=device)
                for seed in dense_seeds for width in dense_widths]
    first = [c for c in frontier if c.seed == seeds[0] and c.name not in names]
    later = [c for c in frontier if c.seed != seeds[0] and c.name not in names]
    cut = sum(1 for c in grid if c.seed == seeds[0])
    return grid[:cut] + first + grid[cut:] + later
