"""Model cases: train (or reuse) one CondNet per dataset x policy x tau, then time its whole inference
against the dense net of the same shape. Shared by `bench models` and the suite runner."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from condcore.data import Dataset
from condcore.mask_export import export_masks
from condcore.models import CondNet, CondNetConfig
from condcore.speed import inference_speedup
from condcore.train import TrainConfig, load_checkpoint, save_checkpoint, train

# The inference mode each learner is evaluated and timed in: the one it was trained to serve.
INFERENCE_MODE = {"dense": "threshold", "random": "sample", "reinforce": "threshold",
                  "straight-through": "threshold", "topk": "topk"}


@dataclass(frozen=True)
class ModelCase:
    dataset: str
    policy: str
    tau: float
    hidden: tuple[int, ...]
    block_size: int
    epochs: int
    seed: int = 0

    @property
    def name(self) -> str:
        hidden = "x".join(map(str, self.hidden))
        return f"{self.dataset}-{self.policy}-tau{self.tau:g}-h{hidden}-k{self.block_size}-e{self.epochs}-s{self.seed}"


def train_or_reuse(case: ModelCase, data: Dataset, root: Path, *, progress: bool = True) -> tuple[CondNet, dict]:
    """Trains the case's model into root/<name>/ unless a finished checkpoint is already there."""
    folder = root / case.name
    if (folder / "metrics.json").exists() and (folder / "model.pt").exists():
        return load_checkpoint(folder / "model.pt")
    tau = 1.0 if case.policy == "dense" else case.tau
    model_cfg = CondNetConfig(data.n_features, data.n_classes, hidden=list(case.hidden), block_size=case.block_size,
                              policy=case.policy, tau=tau)
    train_cfg = TrainConfig(epochs=case.epochs, seed=case.seed, inference_mode=INFERENCE_MODE[case.policy])
    torch.manual_seed(case.seed)
    result = train(CondNet(model_cfg), data, train_cfg, progress=progress)
    metrics = save_checkpoint(result, data, train_cfg, folder)
    export_masks(result.model, data.test, train_cfg.inference_mode, folder / "masks.npz", dataset=data.name)
    return result.model, metrics


def test_batches(x: torch.Tensor, batch: int, most: int = 16) -> list[torch.Tensor]:
    """Up to `most` distinct test batches of `batch` rows; a test set smaller than one batch is tiled,
    never silently shrunk."""
    if len(x) < batch:
        return [x.repeat(-(-batch // len(x)), 1)[:batch]]
    return [x[i : i + batch] for i in range(0, len(x) - batch + 1, batch)][:most]


def measure_model(model: CondNet, metrics: dict, data: Dataset, batches: tuple[int, ...], rounds: int) -> dict:
    """One row: accuracy numbers from the checkpoint, plus end-to-end speedups at each batch size."""
    row = {
        "dataset": metrics["dataset"], "policy": metrics["policy"], "tau": metrics["tau"],
        "inference_mode": metrics["inference_mode"], "test_error": metrics["test_error"],
        "density": json.dumps([round(d, 4) for d in metrics["density"]]), "train_seconds": metrics["train_seconds"],
        "hidden": "x".join(map(str, model.config.hidden)), "block_size": model.config.block_size,
    }
    for batch in batches:
        torch.manual_seed(0)
        speed = inference_speedup(model, test_batches(data.test.x, batch), metrics["inference_mode"], rounds=rounds)
        row[f"dense_ms_b{batch}"] = speed.dense_s * 1e3
        row[f"sparse_ms_b{batch}"] = speed.sparse_s * 1e3
        row[f"speedup_b{batch}"] = speed.speedup
    return row
