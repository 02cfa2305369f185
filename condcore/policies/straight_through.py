"""Straight-through Gumbel-sigmoid gates (beyond the paper): a differentiable relaxation.

Training adds logistic noise to the logit, thresholds the relaxed sample sigmoid((logit + noise) / T)
at 0.5 for the forward pass, and lets the gradient of the relaxed sample through (hard + soft -
soft.detach()). So the classification loss itself trains the policy, with no REINFORCE estimator.
"""

from __future__ import annotations

import torch

from condcore.policies.base import Gate, GateOutput, inference_mask


class StraightThroughGate(Gate):
    regularized = True
    sparse_in_training = False  # the soft gate's gradient reads every block's pre-activation
    options = ("temperature",)
    threshold_logit = 0.0  # sigmoid(logit) > 0.5

    def __init__(self, tau: float, temperature: float = 1.0) -> None:
        super().__init__(tau)
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.temperature = temperature

    def forward(self, logits: torch.Tensor, batch: int, n_blocks: int, mode: str) -> GateOutput:
        if mode == "threshold":  # one comparison (see ReinforceGate.threshold_logit)
            return GateOutput(mask=logits > self.threshold_logit)
        p = torch.sigmoid(logits)
        if mode == "train":
            u = torch.rand_like(logits).clamp(1e-6, 1 - 1e-6)
            soft = torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / self.temperature)
            hard = soft > 0.5
            return GateOutput(mask=hard, multiplier=hard.to(soft.dtype) + soft - soft.detach(), prob=p)
        return GateOutput(mask=inference_mask(p, mode, self.tau), prob=p)
