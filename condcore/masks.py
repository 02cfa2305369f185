"""Synthetic per-example block masks for benchmarks and tests.

iid: every (example, block) is active with probability `density`, independently — the worst case for
sharing work across a batch. clustered: examples follow a few prototypes (as a trained policy tends to
route similar inputs alike), so the union of active blocks over a batch stays small.
"""

from __future__ import annotations

import torch

from condcore.ops.routing import active_tile_pairs


def _check_density(density: float) -> None:
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")


def iid_block_mask(
    batch: int, n_blocks: int, density: float, *, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    _check_density(density)
    return (torch.rand(batch, n_blocks, generator=generator) < density).to(device)


def clustered_block_mask(
    batch: int,
    n_blocks: int,
    density: float,
    *,
    n_clusters: int = 4,
    flip_prob: float = 0.05,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Each example copies one of `n_clusters` prototypes of exactly round(density * n_blocks) active blocks,
    then each of its bits flips with probability `flip_prob` (flips kept density-neutral in expectation)."""
    _check_density(density)
    if n_clusters < 1:
        raise ValueError(f"n_clusters must be >= 1, got {n_clusters}")
    if not 0.0 <= flip_prob < 1.0:
        raise ValueError(f"flip_prob must be in [0, 1), got {flip_prob}")
    if density == 1.0:
        return torch.ones(batch, n_blocks, dtype=torch.bool, device=device)
    n_active = max(1, round(density * n_blocks))
    order = torch.rand(n_clusters, n_blocks, generator=generator).argsort(dim=1)
    prototypes = torch.zeros(n_clusters, n_blocks, dtype=torch.bool)
    prototypes.scatter_(1, order[:, :n_active], True)
    masks = prototypes[torch.randint(n_clusters, (batch,), generator=generator)]
    # Turning bits on at rate p*d/(1-d) and off at rate p balances the expected density.
    on_rate = flip_prob * density / (1.0 - density)
    noise = torch.rand(batch, n_blocks, generator=generator)
    masks = torch.where(masks, noise >= flip_prob, noise < on_rate)
    return masks.to(device)


# Each synthetic mask kind and what draws it: the suites' mask sources are these and "trained".
MASK_KINDS = {"iid": iid_block_mask, "clustered": clustered_block_mask}


def work_density(in_mask: torch.Tensor | None, out_mask: torch.Tensor | None) -> float:
    """Fraction of the dense multiply-adds a perfect per-example kernel would do:
    mean over examples of (active input fraction x active output fraction)."""
    per_example = torch.ones(())
    for mask in (in_mask, out_mask):
        if mask is not None:
            per_example = per_example * mask.float().mean(dim=1).cpu()
    return float(per_example.mean())


def weight_tile_density(
    in_mask: torch.Tensor | None, out_mask: torch.Tensor | None, in_blocks: int, out_blocks: int
) -> float:
    """Fraction of weight tiles that some example of the batch needs: the ideal of a weight-bound kernel."""
    if in_mask is None and out_mask is None:
        return 1.0
    some_mask = in_mask if in_mask is not None else out_mask
    pairs = active_tile_pairs(in_mask, out_mask, some_mask.shape[0], in_blocks, out_blocks, some_mask.device)
    return float(pairs.float().mean())
