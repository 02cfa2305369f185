"""What every block gate (policy learner) hands the CondNet, and the inference modes they share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

INFERENCE_MODES = ("sample", "threshold", "topk")


@dataclass
class GateOutput:
    mask: torch.Tensor  # (B, n_blocks) bool: which blocks run
    # (B, n_blocks) float equal to `mask` in value, carrying the gate's gradient in training (None: no
    # gradient flows through the mask, as with REINFORCE or fixed masks).
    multiplier: torch.Tensor | None = None
    # (B, n_blocks) block probabilities, where the gate computes them (not in the "threshold" inference
    # mode of REINFORCE and straight-through gates, which compares the logits directly)
    prob: torch.Tensor | None = None
    log_prob: torch.Tensor | None = None  # (B,) log-probability of the sampled mask (REINFORCE)


def budget(tau: float, n_blocks: int) -> int:
    """Blocks per example under a fixed budget: round(tau * n_blocks), at least one."""
    return max(1, min(n_blocks, round(tau * n_blocks)))


def topk_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    idx = scores.topk(k, dim=1).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(1, idx, True)


def inference_mask(p: torch.Tensor, mode: str, tau: float) -> torch.Tensor:
    """The mask of block probabilities p under an inference mode: a Bernoulli draw per block ("sample",
    as in the paper), p > 0.5 ("threshold"), or the round(tau * n_blocks) most probable ("topk")."""
    if mode == "sample":
        return torch.bernoulli(p.detach()).bool()
    if mode == "threshold":
        return p > 0.5
    if mode == "topk":
        return topk_mask(p, budget(tau, p.shape[1]))
    raise ValueError(f"unknown gate mode {mode!r}")


class Gate(nn.Module):
    """Decides, per example, which blocks of one hidden layer run.

    `uses_policy`: whether it reads the logits of the layer's policy (a linear map of the layer's input).
    `regularized`: whether the sparsity regularizers act on its probabilities.
    `always_on`: the dense net's gate, whose layers run as plain dense GEMMs.
    `sparse_in_training`: whether training may skip the dropped blocks, i.e. no gradient needs their
    pre-activations (the multiplier, if any, is 0 where the mask is off, and so is its gradient).
    `inference_mode`: the mode it is evaluated and timed in, the one it was trained to serve.
    `options`: the CondNetConfig fields its constructor takes besides tau.
    """

    uses_policy: bool = True
    regularized: bool = False
    always_on: bool = False  # every block always runs: the kernels get no mask at all
    sparse_in_training: bool = True
    inference_mode: str = "threshold"
    options: tuple[str, ...] = ()
    # The logit above which the "threshold" mode keeps a block, where that mode is this one comparison
    # (REINFORCE, straight-through); None where it is not.
    threshold_logit: float | None = None

    def __init__(self, tau: float) -> None:
        super().__init__()
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {tau}")
        self.tau = tau

    def forward(self, logits: torch.Tensor | None, batch: int, n_blocks: int, mode: str) -> GateOutput:
        raise NotImplementedError

    def native_rule(self, mode: str, n_blocks: int) -> tuple[str, float] | None:
        """How an inference `mode` decides from the policy's logits alone, for the native CondNet
        forward to decide it itself: ("threshold", t), a block runs where its logit > t; ("topk", n), the
        n blocks of highest logit run. None where it is neither (no policy, sampled masks)."""
        if mode == "threshold" and self.threshold_logit is not None:
            return ("threshold", self.threshold_logit)
        return None

    def logit_of(self, p: float) -> float | None:
        """The logit at which this gate keeps a block with probability p (kept off the sigmoid's
        flat ends), or None where no constant logit sets the density (no policy, or a fixed budget)."""
        if not self.regularized:
            return None
        p = min(max(p, 1e-3), 1 - 1e-3)
        return math.log(p / (1 - p))
