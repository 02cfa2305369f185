from __future__ import annotations

import pytest
import torch

from condcore.masks import clustered_block_mask, iid_block_mask, weight_tile_density, work_density
from condcore.ops.routing import active_tile_pairs, group_rows_by_block, row_tiles


@pytest.mark.parametrize("make", [iid_block_mask, clustered_block_mask])
@pytest.mark.parametrize("density", [0.1, 0.25, 0.5, 1.0])
def test_realized_density_is_close(make, density, rng):
    mask = make(4096, 32, density, generator=rng)
    assert mask.dtype == torch.bool and mask.shape == (4096, 32)
    assert abs(mask.float().mean().item() - density) < 0.03


def test_clustered_masks_share_blocks_across_a_batch(rng):
    iid = iid_block_mask(16, 64, 0.25, generator=rng)
    clustered = clustered_block_mask(16, 64, 0.25, n_clusters=2, generator=rng)
    assert weight_tile_density(clustered, clustered, 64, 64) < weight_tile_density(iid, iid, 64, 64)


def test_bad_density_raises():
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="density"):
            iid_block_mask(4, 4, bad)


def test_work_density():
    in_mask = torch.tensor([[True, False], [True, True]])
    out_mask = torch.tensor([[True, False, False, False], [True, True, True, True]])
    assert work_density(in_mask, out_mask) == pytest.approx((0.5 * 0.25 + 1.0) / 2)
    assert work_density(None, out_mask) == pytest.approx(0.625)
    assert work_density(None, None) == 1.0


def test_groups_and_tiles(rng):
    mask = iid_block_mask(50, 6, 0.4, generator=rng)
    groups = group_rows_by_block(mask)
    for block in range(6):
        rows = groups.rows[groups.offsets[block] : groups.offsets[block + 1]]
        assert rows.tolist() == mask[:, block].nonzero().flatten().tolist()
    tiles = row_tiles(groups, 8)
    covered = set()
    for block, start in tiles.tolist():
        end = min(start + 8, groups.offsets[block + 1].item())
        assert groups.offsets[block] <= start < end
        covered.update(range(start, end))
    assert covered == set(range(len(groups.rows)))


def test_active_tile_pairs_is_the_union():
    in_mask = torch.tensor([[True, False], [False, False]])
    out_mask = torch.tensor([[False, True, False], [True, False, False]])
    pairs = active_tile_pairs(in_mask, out_mask, 2, 2, 3, torch.device("cpu"))
    assert pairs.tolist() == [[False, False], [True, False], [False, False]]


@pytest.mark.parametrize("sides", ["both", "in", "out"])
def test_one_examples_rectangles_are_the_unions(sides, rng):
    """union_linear's batch-1 plan, read off the two mask rows, equals the general tile-pair plan."""
    from condcore.ops.cpu import union as cpu

    def general(in_mask, out_mask, in_blocks, out_blocks):
        pairs = active_tile_pairs(in_mask, out_mask, 1, in_blocks, out_blocks, torch.device("cpu")).tolist()
        out_any = out_mask.any(dim=0).tolist() if out_mask is not None else [True] * out_blocks
        return [(j0, j1, cpu.true_runs([any(c) for c in zip(*pairs[j0:j1])])) for j0, j1 in cpu.true_runs(out_any)]

    for density in (0.0, 0.1, 0.3, 0.7, 1.0):
        for _ in range(20):
            in_mask = torch.rand(1, 13, generator=rng) < density if sides != "out" else None
            out_mask = torch.rand(1, 11, generator=rng) < density if sides != "in" else None
            assert cpu.union_rectangles(in_mask, out_mask, 1, 13, 11, torch.device("cpu")) == general(in_mask, out_mask, 13, 11)
