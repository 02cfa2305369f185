"""Masks of a trained model, exported so the kernel benchmark can time the masks a real policy makes.

Format (condbench-masks/1): one NumPy .npz file holding
  layer_<i>  (n_examples, n_blocks_i) bool : the blocks hidden layer i ran for each test example
  meta       0-d str array, JSON: {"format", "dataset", "split", "policy", "tau", "inference_mode",
             "block_size", "hidden", "n_features", "n_examples", "density"}
Layer i's mask is the output mask of hidden layer i and the input mask of layer i+1.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from condcore.data import Split
from condcore.models import CondNet

FORMAT = "condbench-masks/1"


@dataclass
class MaskSet:
    meta: dict
    layers: list[torch.Tensor]  # (n_examples, n_blocks) bool per hidden layer


@torch.no_grad()
def collect_masks(model: CondNet, split: Split, mode: str, batch_size: int = 512) -> list[torch.Tensor]:
    model.eval()
    per_batch = [model(split.x[i : i + batch_size], mode=mode).masks for i in range(0, len(split), batch_size)]
    return [torch.cat(layer) for layer in zip(*per_batch)]


def export_masks(model: CondNet, split: Split, mode: str, path: Path, *, dataset: str, split_name: str = "test") -> MaskSet:
    layers = collect_masks(model, split, mode)
    cfg = model.config
    meta = {
        "format": FORMAT, "dataset": dataset, "split": split_name, "policy": cfg.policy, "tau": cfg.tau,
        "inference_mode": mode, "block_size": cfg.block_size, "hidden": list(cfg.hidden),
        "n_features": cfg.n_features, "n_examples": len(split), "density": [m.float().mean().item() for m in layers],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"layer_{i}": m.cpu().numpy() for i, m in enumerate(layers)}
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")  # savez adds .npz to a name without it
    np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), **arrays)
    tmp.replace(path)
    return MaskSet(meta, layers)


def load_masks(path: Path) -> MaskSet:
    with np.load(path, allow_pickle=False) as blob:
        if "meta" not in blob:
            raise ValueError(f"{path}: not a condbench mask file (no meta)")
        meta = json.loads(str(blob["meta"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: mask format {meta.get('format')!r}, expected {FORMAT!r}")
        layers = [torch.from_numpy(blob[f"layer_{i}"]).bool() for i in range(len(meta["hidden"]))]
    return MaskSet(meta, layers)
