"""Training a CondNet: one step trains the network and its policies together.

Loss per step = cross-entropy
              + sum over layers l of lambda_s[l] * (L_b + L_e)  (sparsity toward layer l's tau, policies.regularizers)
              + sum over layers l of lambda_v[l] * L_v          (policies that differ between examples)
              + the REINFORCE surrogate for Bernoulli gates     (policies.reinforce)
and L2 on the network weights (`l2`) and on the policies (`policy_l2`) as the optimizer's weight decay.
The cross-entropy and the surrogate are averaged over the minibatch, or (`loss_reduction = "sum"`, as the
paper's code does) summed: the same lr is then a batch-size times larger step for them, while the
regularizers, which are means already, and the weight decay keep theirs.
Layer l's policy learns at the network's rate times its multiplier. lambda_s, lambda_v and
policy_lr_mult are one number for every layer, or one per hidden layer (the paper's CIFAR-10 recipe:
lambda_b 80, 40, 40; lambda_v 10, 20, 20; multipliers 0.01, 0.5, 0.5).
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from condcore.data import Dataset, Split
from condcore.models import CondNet, CondNetConfig
from condcore.policies import INFERENCE_MODES
from condcore.policies.regularizers import block_balance, example_balance, variance_bonus
from condcore.policies.reinforce import Baseline, reinforce_loss

OPTIMIZERS = ("sgd", "adam")
LOSS_REDUCTIONS = ("mean", "sum")
# Raised whenever training changes what a configuration produces, so that a checkpoint of an older
# version is trained again instead of reused under the same name. 2: policies start at their target density.
# 3: the top-k router chooses its blocks by logit (condcore/policies/topk.py). 4: its multiplier in log
# space (a router whose logits fell below -88 trained to NaN).
TRAINING_VERSION = 4
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # sgd only
    policy_lr_mult: float | list[float] = 30.0
    l2: float = 1e-5
    policy_l2: float = 0.0
    lambda_s: float | list[float] = 10.0
    lambda_v: float | list[float] = 1.0
    baseline: str = "batch_min"
    loss_reduction: str = "mean"  # of the cross-entropy and the REINFORCE surrogate over the minibatch
    inference_mode: str = "threshold"
    seed: int = 0
    precision: str = "auto"  # fp32 | bf16 (autocast GEMMs, fp32 weights) | auto: bf16 where the CPU has it
    valid_every: int = 1  # epochs between validation passes (the last epoch always has one)

    def resolved_precision(self, device: torch.device) -> str:
        if self.precision != "auto":
            return self.precision
        return "bf16" if native_bf16(device) else "fp32"

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.valid_every < 1:
            raise ValueError("epochs, batch_size and valid_every must be at least 1")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if not math.isfinite(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a positive number, got {self.lr}")
        for name in ("policy_lr_mult", "l2", "policy_l2", "lambda_s", "lambda_v"):
            value = getattr(self, name)
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0 for v in values):
                raise ValueError(f"{name} must be a non-negative number or a list of them, got {value!r}")
        if self.inference_mode not in INFERENCE_MODES:
            raise ValueError(f"unknown inference mode {self.inference_mode!r}; choose one of {', '.join(INFERENCE_MODES)}")
        Baseline(self.baseline)  # raises on an unknown kind
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"unknown loss reduction {self.loss_reduction!r}; choose one of {', '.join(LOSS_REDUCTIONS)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")

    def per_layer(self, name: str, n_layers: int) -> list[float]:
        """lambda_s, lambda_v or policy_lr_mult for each of n_layers hidden layers."""
        value = getattr(self, name)
        if not isinstance(value, list):
            return [float(value)] * n_layers
        if len(value) != n_layers:
            raise ValueError(f"{name} has {len(value)} values for {n_layers} hidden layers")
        return [float(v) for v in value]


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 GEMMs run in hardware here (emulated bf16 on an older CPU is slower than fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


@dataclass
class Evaluation:
    accuracy: float
    loss: float
    density: list[float]  # realized fraction of active blocks per hidden layer
    mode: str


@dataclass
class TrainResult:
    model: CondNet
    seconds: float
    history: list[dict] = field(default_factory=list)
    precision: str = "fp32"  # as resolved: what the GEMMs really ran in


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@torch.no_grad()
def evaluate(model: CondNet, split: Split, mode: str, batch_size: int = 512) -> Evaluation:
    model.eval()
    correct, loss, active, total = 0, 0.0, None, 0
    for start in range(0, len(split), batch_size):
        x, y = split.x[start : start + batch_size], split.y[start : start + batch_size]
        trace = model(x, mode=mode)
        correct += (trace.logits.argmax(dim=1) == y).sum().item()
        loss += F.cross_entropy(trace.logits, y, reduction="sum").item()
        counts = [m.sum().item() for m in trace.masks]
        active = counts if active is None else [a + c for a, c in zip(active, counts)]
        total += len(y)
    density = [a / (total * n) for a, n in zip(active, model.n_blocks)]
    return Evaluation(accuracy=correct / total, loss=loss / total, density=density, mode=mode)


def _optimizer(model: CondNet, cfg: TrainConfig) -> torch.optim.Optimizer:
    mults = cfg.per_layer("policy_lr_mult", len(model.policies))
    groups = [{"params": model.network_parameters(), "weight_decay": cfg.l2, "lr": cfg.lr}]
    groups += [{"params": list(policy.parameters()), "weight_decay": cfg.policy_l2, "lr": cfg.lr * mult}
               for policy, mult in zip(model.policies, mults)]
    groups = [g for g in groups if g["params"]]
    # fused: one kernel per step instead of a loop of elementwise ops per tensor; with 4M weights the
    # unfused Adam step took 60% of a training step on 2 CPU cores (torch.profiler).
    fused = all(p.dtype.is_floating_point for g in groups for p in g["params"])
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=cfg.momentum, fused=fused)
    return torch.optim.Adam(groups, fused=fused)


def step_loss(model: CondNet, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, baseline: Baseline,
              precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """The training objective on one minibatch, and the per-example cross-entropy. With bf16, the
    network's GEMMs run in bf16 under autocast; the policies, the losses and the weights stay fp32."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        trace = model(x, mode="train")
    cost = F.cross_entropy(trace.logits.float(), y, reduction="none")
    loss = cost.sum() if cfg.loss_reduction == "sum" else cost.mean()
    n_layers = len(model.gates)
    log_probs = []
    for gate, out, lambda_s, lambda_v in zip(model.gates, trace.gates, cfg.per_layer("lambda_s", n_layers),
                                             cfg.per_layer("lambda_v", n_layers)):
        if gate.regularized and out.prob is not None:
            loss = loss + lambda_s * (block_balance(out.prob, gate.tau) + example_balance(out.prob, gate.tau))
            loss = loss + lambda_v * variance_bonus(out.prob)
        if out.log_prob is not None:
            log_probs.append(out.log_prob)
    if log_probs:
        loss = loss + reinforce_loss(cost, torch.stack(log_probs).sum(dim=0), baseline, cfg.loss_reduction)
    return loss, cost


def train(model: CondNet, data: Dataset, cfg: TrainConfig, *, progress: bool = True) -> TrainResult:
    """Trains in place; evaluates on the validation split every `valid_every` epochs and after the last."""
    cfg.validate()
    seed_everything(cfg.seed)
    optimizer = _optimizer(model, cfg)
    baseline = Baseline(cfg.baseline)
    order_gen = torch.Generator().manual_seed(cfg.seed)
    precision = cfg.resolved_precision(data.train.x.device)
    if precision == "bf16" and not native_bf16(data.train.x.device):
        warnings.warn("bf16 training on a CPU without native bf16 runs emulated, slower than fp32 "
                      "(precision auto picks fp32 here)", RuntimeWarning, stacklevel=2)
    history: list[dict] = []
    start = time.perf_counter()
    bar = _progress(progress)
    with bar:
        task = bar.add_task(f"{data.name} {model.config.policy} tau={model.config.tau}", total=cfg.epochs)
        for epoch in range(cfg.epochs):
            model.train()
            order = torch.randperm(len(data.train), generator=order_gen)
            total_cost = 0.0
            for i in range(0, len(order), cfg.batch_size):
                idx = order[i : i + cfg.batch_size]
                loss, cost = step_loss(model, data.train.x[idx], data.train.y[idx], cfg, baseline, precision)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total_cost += cost.sum().item()
            record = {"epoch": epoch + 1, "train_loss": total_cost / len(data.train)}
            if (epoch + 1) % cfg.valid_every == 0 or epoch + 1 == cfg.epochs:
                valid = evaluate(model, data.valid, cfg.inference_mode)
                record.update(valid_accuracy=valid.accuracy, valid_density=valid.density)
                bar.update(task, description=(
                    f"{data.name} {model.config.policy} tau={model.config.tau} "
                    f"valid acc {valid.accuracy:.3f} density {', '.join(f'{d:.2f}' for d in valid.density)}"))
            history.append(record)
            bar.update(task, advance=1)
    return TrainResult(model=model, seconds=time.perf_counter() - start, history=history, precision=precision)


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    disable=not enabled, transient=False)


def save_checkpoint(result: TrainResult, data: Dataset, cfg: TrainConfig, out_dir: Path) -> dict:
    """Writes model.pt (weights + configs + metrics) and metrics.json; returns the metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    test = evaluate(result.model, data.test, cfg.inference_mode)
    metrics = {
        "dataset": data.name,
        "policy": result.model.config.policy,
        "tau": result.model.config.tau,
        "seed": cfg.seed,
        "inference_mode": cfg.inference_mode,
        "test_accuracy": test.accuracy,
        "test_error": 1.0 - test.accuracy,
        "test_examples": len(data.test),
        "test_loss": test.loss,
        "density": test.density,
        "train_seconds": result.seconds,
        "epochs": cfg.epochs,
        "precision": result.precision,
        "training_version": TRAINING_VERSION,
        "model": result.model.config.to_dict(),
        "train": asdict(cfg),
    }
    metrics["valid_error"] = last_valid_error(result.history)
    # Beside it, then renamed over it: a kill mid-write (or a second writer) leaves no half model.pt.
    tmp = out_dir / f".model.pt.{os.getpid()}.tmp"
    torch.save({"model_config": result.model.config.to_dict(), "train_config": asdict(cfg),
                "state_dict": result.model.state_dict(), "metrics": metrics, "history": result.history}, tmp)
    tmp.replace(out_dir / "model.pt")
    write_atomically(out_dir / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    return metrics


def last_valid_error(history: list[dict]) -> float | None:
    """The validation error of the last epoch that was validated (None when none was)."""
    valid = [record["valid_accuracy"] for record in history if "valid_accuracy" in record]
    return 1.0 - valid[-1] if valid else None


def write_atomically(path: Path, text: str) -> None:
    """A reader never sees half a file: metrics.json marks a finished checkpoint, and an interrupted
    run must not leave a truncated one behind."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[CondNet, dict]:
    """The model, and its metrics with its training `history` (per epoch) and `valid_error` added."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = CondNet(CondNetConfig(**blob["model_config"]))
    model.load_state_dict(blob["state_dict"])
    model.eval()
    history = blob.get("history", [])
    return model, {**blob["metrics"], "history": history, "valid_error": last_valid_error(history)}
