"""End-to-end inference speed of a trained CondNet against the dense net of the same shape."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from condcore.models import CondNet, CondNetConfig
from condcore.ops import frozen_weights
from condcore.timing import median, ratio_samples, speedup_interval, time_interleaved


@dataclass
class SpeedResult:
    batch: int
    dense_s: float  # medians, per batch
    sparse_s: float
    speedup: float  # the median per-round ratio of interleaved rounds
    interval: tuple[float, float]  # its 95% interval (condcore.timing.speedup_interval)


def dense_twin(model: CondNet) -> CondNet:
    """The dense net with the same layer shapes and weights (no policies, no masks)."""
    cfg = CondNetConfig(**{**model.config.to_dict(), "policy": "dense", "tau": 1.0})
    twin = CondNet(cfg).to(next(model.parameters()).device)
    twin.hidden.load_state_dict(model.hidden.state_dict())
    twin.output.load_state_dict(model.output.state_dict())
    return twin.eval()


@torch.no_grad()
def inference_speedup(model: CondNet, batches: list[torch.Tensor], mode: str, *, rounds: int = 30) -> SpeedResult:
    """Whole forward passes, policies included, timed interleaved with the dense twin's. Each timed call
    runs every batch in `batches` (e.g. 16 different single examples), so a result does not hang on
    how many blocks one particular input happens to use; times are per batch."""
    model.eval()
    dense = dense_twin(model)
    device = "cuda" if batches[0].is_cuda else "cpu"

    def over_all(net: CondNet):
        return lambda: [net(x, mode=mode) for x in batches]

    with frozen_weights():
        samples = time_interleaved({"dense": over_all(dense), "sparse": over_all(model)}, device, rounds)
    n = len(batches)
    return SpeedResult(batch=batches[0].shape[0], dense_s=median(samples["dense"]) / n,
                       sparse_s=median(samples["sparse"]) / n,
                       speedup=median(ratio_samples(samples["dense"], samples["sparse"])),
                       interval=speedup_interval(samples["dense"], samples["sparse"], device))
