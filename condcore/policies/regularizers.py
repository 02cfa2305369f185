"""The paper's sparsity regularizers on block probabilities p (B, n_blocks) with target density tau
(Bengio et al. 2015, sec. 3.1):

L_b = sum over blocks of (mean over the batch of p - tau)^2 : each block is used a fraction tau of the time.
L_e = mean over examples of (mean over blocks of p - tau)^2 : each example uses a fraction tau of blocks.
L_v = -(sum over blocks of the variance over the batch of p) : pushes the policy to differ between
      examples (a constant policy would be plain dropout).
"""

from __future__ import annotations

import torch


def block_balance(p: torch.Tensor, tau: float) -> torch.Tensor:
    return ((p.mean(dim=0) - tau) ** 2).sum()


def example_balance(p: torch.Tensor, tau: float) -> torch.Tensor:
    return ((p.mean(dim=1) - tau) ** 2).mean()


def variance_bonus(p: torch.Tensor) -> torch.Tensor:
    return -p.var(dim=0, unbiased=False).sum()
