"""A fixed-budget top-k router (beyond the paper, as in mixture-of-experts): each example runs exactly
round(tau * n_blocks) blocks, those with the highest policy scores. The chosen blocks are multiplied by
p / p.detach() (value 1), so the loss reaches the scores of the blocks it used, as an MoE gate's does."""

from __future__ import annotations

import torch

from condcore.policies.base import Gate, GateOutput, budget, topk_mask


class TopKGate(Gate):
    inference_mode = "topk"

    def forward(self, logits: torch.Tensor, batch: int, n_blocks: int, mode: str) -> GateOutput:
        if mode not in ("train", "sample", "threshold", "topk"):
            raise ValueError(f"unknown gate mode {mode!r}")
        p = torch.sigmoid(logits)
        mask = topk_mask(p, budget(self.tau, n_blocks))
        multiplier = mask.to(p.dtype) * (p / p.detach()) if mode == "train" else None
        return GateOutput(mask=mask, multiplier=multiplier, prob=p)
