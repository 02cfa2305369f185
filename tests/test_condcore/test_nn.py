from __future__ import annotations

import pytest
import torch

from condcore import BlockSparseLinear
from condcore.masks import iid_block_mask
from condcore.ops.reference import reference_linear


def test_without_masks_it_is_nn_linear(rng):
    layer = BlockSparseLinear(32, 48, block_size=16, backend="torch")
    x = torch.randn(3, 7, 32, generator=rng)
    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, layer.weight, layer.bias))


def test_leading_dims_are_flattened_into_the_batch(rng):
    layer = BlockSparseLinear(32, 48, block_size=16, backend="torch")
    x = torch.randn(2, 3, 32, generator=rng)
    in_mask = iid_block_mask(6, 2, 0.5, generator=rng).reshape(2, 3, 2)
    out_mask = iid_block_mask(6, 3, 0.5, generator=rng).reshape(2, 3, 3)
    y = layer(x, in_mask, out_mask)
    want = reference_linear(x.reshape(6, 32), layer.weight, layer.bias, in_mask.reshape(6, 2), out_mask.reshape(6, 3), 16)
    torch.testing.assert_close(y, want.reshape(2, 3, 48).detach())


def test_bad_construction_and_mask_shapes(rng):
    with pytest.raises(ValueError, match="must be positive and divide"):
        BlockSparseLinear(30, 48, block_size=16)
    layer = BlockSparseLinear(32, 48, block_size=16, backend="torch")
    with pytest.raises(ValueError, match="leading shape"):
        layer(torch.randn(2, 3, 32), out_mask=torch.ones(3, 2, 3, dtype=torch.bool))


def test_trains(rng):
    torch.manual_seed(0)
    layer = BlockSparseLinear(16, 16, block_size=4, backend="torch")
    teacher = BlockSparseLinear(16, 16, block_size=4, backend="reference")
    x = torch.randn(64, 16, generator=rng)
    out_mask = iid_block_mask(64, 4, 0.5, generator=rng)
    with torch.no_grad():
        target = teacher(x, out_mask=out_mask)
    opt = torch.optim.SGD(layer.parameters(), lr=0.3)
    losses = []
    for _ in range(50):
        loss = ((layer(x, out_mask=out_mask) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
