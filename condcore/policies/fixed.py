"""Gates without a learned policy: the dense net, and uniform random block dropout (the paper's
blockDropout baseline) at the same density as a CondNet's target."""

from __future__ import annotations

import torch

from condcore.policies.base import Gate, GateOutput


class DenseGate(Gate):
    """Every block runs: the dense net with the same architecture."""

    uses_policy = False
    always_on = True
    sparse_in_training = False

    def __init__(self, tau: float = 1.0) -> None:
        super().__init__(1.0)

    def forward(self, logits, batch: int, n_blocks: int, mode: str) -> GateOutput:
        return GateOutput(mask=torch.ones(batch, n_blocks, dtype=torch.bool))


class RandomDropoutGate(Gate):
    """Each block runs with probability tau, independently per example, in training and at inference,
    so the net is trained and tested at the compute it is timed at."""

    uses_policy = False
    inference_mode = "sample"

    def forward(self, logits, batch: int, n_blocks: int, mode: str) -> GateOutput:
        return GateOutput(mask=torch.rand(batch, n_blocks) < self.tau)
