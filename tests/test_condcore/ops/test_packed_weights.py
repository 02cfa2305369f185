"""Packed weights: only inside frozen_weights(), the same results as the plain path, a changed weight
is repacked, and nothing is kept once the block exits."""

from __future__ import annotations

import gc

import pytest
import torch

from condcore.ops import block_sparse_linear, frozen_weights, packed_weights
from condcore.ops.packed_weights import packed_blocks
from condcore.problems import make_problem

pytestmark = pytest.mark.skipif(not packed_weights.ONEDNN_LINEAR, reason="needs torch built with oneDNN")


def grouped(p):
    return block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")


def test_nothing_is_packed_outside_frozen_weights():
    w = torch.randn(64, 48)
    assert packed_blocks(w, 16) is None and packed_blocks(w, 16) is None


def test_packed_blocks_compute_the_blocks_and_are_reused():
    w = torch.randn(64, 48)
    x = torch.randn(5, 48)
    with frozen_weights():
        blocks = packed_blocks(w, 16)
        assert blocks is not None and len(blocks) == 4
        for j, block in enumerate(blocks):
            y = torch.ops.mkldnn._linear_pointwise(x, block, None, "none", [], "")
            torch.testing.assert_close(y, x @ w[16 * j : 16 * (j + 1)].t(), rtol=1e-5, atol=1e-5)
        assert packed_blocks(w, 16) is blocks
    assert not packed_weights._cache


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_grouped_results_equal_with_and_without_packing(dtype):
    p = make_problem(96, 64, 80, 16, in_density=0.5, out_density=0.4, dtype=dtype)
    tol = 1e-4 if dtype == torch.float32 else 4e-2
    plain = grouped(p)
    with frozen_weights():
        packed = grouped(p)
        # packed where oneDNN takes the dtype on this CPU (bf16 needs AVX-512 BF16 or AMX)
        assert (packed_blocks(p.weight, 16) is not None) == packed_weights.onednn_takes(dtype)
    torch.testing.assert_close(plain.double(), p.reference(), rtol=tol, atol=tol)
    torch.testing.assert_close(packed.double(), p.reference(), rtol=tol, atol=tol)


def test_a_weight_changed_inside_the_block_is_repacked():
    p = make_problem(64, 32, 48, 16, out_density=0.5)
    with frozen_weights():
        grouped(p)
        with torch.no_grad():
            p.weight.mul_(-2.0)  # same storage, new version: the guard notices
        torch.testing.assert_close(grouped(p).double(), p.reference(), rtol=1e-4, atol=1e-4)
        p.weight = torch.randn_like(p.weight)  # a new tensor altogether
        torch.testing.assert_close(grouped(p).double(), p.reference(), rtol=1e-4, atol=1e-4)


def test_fused_optimizer_steps_between_blocks_are_seen():
    # Fused optimizers leave the version counter alone: only dropping the cache at exit keeps this right.
    p = make_problem(64, 32, 48, 16, out_density=0.5)
    p.weight.requires_grad_(True)
    opt = torch.optim.Adam([p.weight], lr=0.5, fused=True)
    for _ in range(2):
        with torch.no_grad(), frozen_weights():
            torch.testing.assert_close(grouped(p).double(), p.reference(), rtol=1e-4, atol=1e-4)
        opt.zero_grad()
        (p.weight ** 2).sum().backward()
        opt.step()


def test_unsuitable_weights_are_left_plain():
    with frozen_weights():
        assert packed_blocks(torch.randn(32, 32, dtype=torch.float64), 16) is None
        assert packed_blocks(torch.randn(32, 64)[:, ::2], 16) is None  # strided
        assert packed_blocks(torch.randn(40, 32), 16) is None  # a partial last block


def test_cache_entry_dies_with_its_weight():
    with frozen_weights():
        w = torch.randn(32, 32)
        packed_blocks(w, 16)
        key = (id(w), ("onednn", 16))
        assert key in packed_weights._cache
        del w
        gc.collect()
        assert key not in packed_weights._cache
