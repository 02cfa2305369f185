"""The paper's policy learner: Bernoulli block gates trained with REINFORCE (Bengio et al. 2015, sec. 3).

Each block is kept with probability p = sigmoid(logit), squashed into [p_min, p_max] so that every
block keeps some chance of being tried (the paper's clipping). In training a mask is sampled per example
and its log-probability returned; the trainer turns it into the REINFORCE term
    (cost_b - baseline) * log pi(mask_b),
cost_b being the example's classification loss (the reward is its negative). No gradient flows through
the mask itself.
"""

from __future__ import annotations

import math

import torch

from condcore.policies.base import Gate, GateOutput, inference_mask


class ReinforceGate(Gate):
    regularized = True
    options = ("p_min", "p_max")

    def __init__(self, tau: float, p_min: float = 0.01, p_max: float = 0.99) -> None:
        super().__init__(tau)
        if not 0.0 <= p_min < p_max <= 1.0:
            raise ValueError(f"need 0 <= p_min < p_max <= 1, got {p_min}, {p_max}")
        self.p_min, self.p_max = p_min, p_max

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return self.p_min + (self.p_max - self.p_min) * torch.sigmoid(logits)

    def logit_of(self, p: float) -> float | None:
        return super().logit_of((p - self.p_min) / (self.p_max - self.p_min))

    @property
    def threshold_logit(self) -> float:
        """The logit above which p > 0.5: the "threshold" inference mode as one comparison of the logits
        (at batch 1 the four ops through p cost a gate 36 us, the comparison 7). The two differ only
        where fp32 rounds p to exactly 0.5, within about 1e-6 of this logit."""
        q = (0.5 - self.p_min) / (self.p_max - self.p_min)
        return -math.inf if q <= 0 else math.inf if q >= 1 else math.log(q / (1 - q))

    def forward(self, logits: torch.Tensor, batch: int, n_blocks: int, mode: str) -> GateOutput:
        if mode == "threshold":
            return GateOutput(mask=logits > self.threshold_logit)
        p = self.probabilities(logits)
        mask = inference_mask(p, "sample" if mode == "train" else mode, self.tau)
        log_prob = None
        if mode == "train":
            m = mask.to(p.dtype)
            log_prob = (m * torch.log(p) + (1 - m) * torch.log1p(-p)).sum(dim=1)
        return GateOutput(mask=mask, prob=p, log_prob=log_prob)


class Baseline:
    """The REINFORCE baseline subtracted from the per-example cost (variance reduction).

    none: 0. batch_min: the smallest cost in the minibatch (the paper's reference code). moving_average:
    an exponential moving average of the mean cost (momentum 0.9).
    """

    KINDS = ("none", "batch_min", "moving_average")

    def __init__(self, kind: str = "batch_min", momentum: float = 0.9) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown REINFORCE baseline {kind!r}; choose one of {', '.join(self.KINDS)}")
        self.kind, self.momentum, self.average = kind, momentum, None

    def __call__(self, cost: torch.Tensor) -> torch.Tensor:
        if self.kind == "none":
            return torch.zeros((), dtype=cost.dtype)
        if self.kind == "batch_min":
            return cost.min()
        mean = cost.mean().item()
        self.average = mean if self.average is None else self.momentum * self.average + (1 - self.momentum) * mean
        return torch.tensor(self.average, dtype=cost.dtype)


def reinforce_loss(cost: torch.Tensor, log_prob: torch.Tensor, baseline: Baseline, reduction: str = "mean"
                   ) -> torch.Tensor:
    """Surrogate whose gradient is E[(cost - baseline) * grad log pi(mask)] (times the batch size with
    reduction "sum"); cost is not differentiated."""
    cost = cost.detach()
    terms = (cost - baseline(cost)) * log_prob
    return terms.sum() if reduction == "sum" else terms.mean()
