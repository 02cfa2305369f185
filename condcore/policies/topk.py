"""A fixed-budget top-k router (beyond the paper, as in mixture-of-experts): each example runs exactly
round(tau * n_blocks) blocks, those with the highest policy scores. The chosen blocks are multiplied by
p / p.detach() (value 1), so the loss reaches the scores of the blocks it used, as an MoE gate's does.
It is computed as exp(log p - log p.detach()), the same value and gradient: as a quotient it was 0 / 0
wherever a router pushed its logits below -88, where fp32 rounds p to 0 (on mnist5k, the tau = 0.25 and
0.5 routers trained to NaN in their first epoch).

The blocks are chosen by logit, not by p = sigmoid(logit): the two orders agree until fp32 rounds
large logits to p = 1.0 exactly, and trained routers reach them (logits of 30-64 on the digits
models), where choosing by p left the choice among the tied blocks to the sort's implementation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from condcore.policies.base import INFERENCE_MODES, Gate, GateOutput, budget, topk_mask


class TopKGate(Gate):
    inference_mode = "topk"

    def native_rule(self, mode: str, n_blocks: int) -> tuple[str, float] | None:
        # Every inference mode runs the budget (see forward).
        return ("topk", budget(self.tau, n_blocks)) if mode in INFERENCE_MODES else None

    def forward(self, logits: torch.Tensor, batch: int, n_blocks: int, mode: str) -> GateOutput:
        if mode not in ("train", "sample", "threshold", "topk"):
            raise ValueError(f"unknown gate mode {mode!r}")
        p = torch.sigmoid(logits)
        mask = topk_mask(logits, budget(self.tau, n_blocks))
        multiplier = None
        if mode == "train":
            log_p = F.logsigmoid(logits)
            multiplier = mask.to(p.dtype) * torch.exp(log_p - log_p.detach())
        return GateOutput(mask=mask, multiplier=multiplier, prob=p)
