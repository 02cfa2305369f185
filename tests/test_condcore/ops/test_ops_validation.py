"""Bad input to block_sparse_linear raises one clear ValueError, never a silent wrong answer."""

from __future__ import annotations

import pytest
import torch

from condcore.ops import block_sparse_linear, triton_available
from condcore.problems import make_problem


@pytest.fixture
def p(rng):
    return make_problem(4, 32, 48, 16, generator=rng)


def call(p, **changes):
    args = {"x": p.x, "weight": p.weight, "bias": p.bias, **p.kwargs(), "backend": "torch"}
    args.update(changes)
    x, weight, bias = args.pop("x"), args.pop("weight"), args.pop("bias")
    return block_sparse_linear(x, weight, bias, **args)


@pytest.mark.parametrize(
    "changes,message",
    [
        (lambda p: {"x": p.x[0]}, "x must be 2-D"),
        (lambda p: {"weight": p.weight[:, :16]}, "input features"),
        (lambda p: {"weight": p.weight.double()}, "weight dtype"),
        (lambda p: {"weight": p.weight.bfloat16(), "bias": p.bias.bfloat16()}, "weight dtype"),  # fp32 x
        (lambda p: {"x": p.x.bfloat16(), "weight": p.weight.half(), "bias": None}, "weight dtype"),
        (lambda p: {"x": p.x.bfloat16(), "bias": p.bias.bfloat16()}, "bias dtype"),  # fp32 weight
        (lambda p: {"x": p.x.long(), "weight": p.weight.long(), "bias": None}, "floating"),
        (lambda p: {"x": p.x[:0], "in_mask": p.in_mask[:0], "out_mask": p.out_mask[:0]}, "empty batch"),
        (lambda p: {"block_size": 24}, "must divide in_features 32 when in_mask"),
        (lambda p: {"block_size": 32, "in_mask": None}, "must divide out_features 48 when out_mask"),
        (lambda p: {"block_size": 5}, "divides neither in_features 32 nor out_features 48"),
        (lambda p: {"block_size": 0}, "positive int"),
        (lambda p: {"block_size": 16.0}, "positive int"),
        (lambda p: {"bias": p.bias[:10]}, "bias must have shape"),
        (lambda p: {"bias": p.bias.double()}, "bias dtype"),
        (lambda p: {"in_mask": p.in_mask[:, :1]}, "in_mask must have shape"),
        (lambda p: {"out_mask": p.out_mask[:3]}, "out_mask must have shape"),
        (lambda p: {"out_mask": p.out_mask.int()}, "torch.bool"),
        (lambda p: {"in_mask": p.in_mask.tolist()}, "in_mask must be a torch.Tensor"),
        (lambda p: {"backend": "cuda-magic"}, "unknown backend"),
        (lambda p: {"regime": "sideways"}, "unknown regime"),
        (lambda p: {"out": torch.empty(4, 47)}, "out must have shape"),
        (lambda p: {"out": torch.empty(4, 48, dtype=torch.float64)}, "out must be"),
        (lambda p: {"out": torch.empty(48, 4).t()}, "contiguous"),
    ],
)
def test_bad_input_raises_value_error(p, changes, message):
    with pytest.raises(ValueError, match=message):
        call(p, **changes(p))


def test_out_with_gradients_is_refused(p):
    with pytest.raises(ValueError, match="out= is not supported"):
        call(p, x=p.x.requires_grad_(), out=torch.empty(4, 48))


def test_triton_without_gpu_or_interpreter_is_refused(p, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    if torch.cuda.is_available():
        pytest.skip("a CUDA machine may run Triton on CUDA tensors")
    assert not triton_available(p.x.device)
    with pytest.raises(ValueError, match="needs a CUDA tensor"):
        call(p, backend="triton")


@pytest.mark.triton
def test_triton_refuses_float64_and_small_blocks(rng):
    p = make_problem(4, 32, 48, 16, dtype=torch.float64, generator=rng)
    with pytest.raises(ValueError, match="float64"):
        call(p, backend="triton")
    p = make_problem(4, 32, 48, 8, generator=rng)
    with pytest.raises(ValueError, match="multiple of 16"):
        call(p, backend="triton")


@pytest.mark.triton
@pytest.mark.parametrize("block_size", [16, 48, 128, 256])
def test_autotune_pruning_keeps_only_tiles_inside_a_block(block_size):
    import triton

    from condcore.ops.triton.common import fitting_configs

    configs = [triton.Config({"BLOCK_N": n, "BLOCK_K": k}) for n in (16, 32, 64, 128) for k in (16, 32, 64, 128)]
    kept = fitting_configs(configs, {}, BLOCK_SIZE=block_size)
    assert kept and all(block_size % c.kwargs["BLOCK_N"] == 0 and block_size % c.kwargs["BLOCK_K"] == 0 for c in kept)
    with pytest.raises(ValueError, match="no Triton tile configuration"):
        fitting_configs([triton.Config({"BLOCK_N": 32, "BLOCK_K": 32})], {}, BLOCK_SIZE=16)


@pytest.mark.triton
def test_autotune_pruning_drops_fp32_fma_tiles_that_spill():
    import triton

    from condcore.ops.triton.common import FFMA_ACCUMULATORS_PER_THREAD, accumulators_per_thread, fitting_configs

    configs = [triton.Config({"BLOCK_N": n, "BLOCK_K": 32}, num_warps=w) for n in (32, 64, 128) for w in (4, 8)]
    kept = fitting_configs(configs, {}, BLOCK_SIZE=128, BLOCK_M=64, INPUT_PRECISION="ieee")
    assert kept and all(accumulators_per_thread(c, 64) <= FFMA_ACCUMULATORS_PER_THREAD for c in kept)
    assert len(kept) < len(configs)
    # Tensor-core precisions keep everything; a list where nothing is small enough keeps one config.
    assert fitting_configs(configs, {}, BLOCK_SIZE=128, BLOCK_M=64, INPUT_PRECISION="tf32") == configs
    assert len(fitting_configs(configs[-1:], {}, BLOCK_SIZE=128, BLOCK_M=128, INPUT_PRECISION="ieee")) == 1


@pytest.mark.parametrize("masks", [{}, {"in_mask": None}, {"out_mask": None}, {"in_mask": None, "out_mask": None}])
def test_block_size_dividing_neither_side_is_refused_with_or_without_masks(rng, masks):
    p = make_problem(4, 64, 64, 16, generator=rng)
    with pytest.raises(ValueError, match="divides neither"):
        call(p, block_size=48, **masks)


@pytest.mark.parametrize("regime", ["grouped", "union"])
def test_an_out_that_requires_grad_is_refused_on_every_path(p, regime):
    """Found probing: a RuntimeError on one path, silently written on two others."""
    for grad in (False, True):
        with torch.set_grad_enabled(grad), pytest.raises(ValueError, match="out must not require grad"):
            call(p, regime=regime, out=torch.empty(4, 48, requires_grad=True))


@pytest.mark.parametrize("regime", ["grouped", "union"])
@pytest.mark.parametrize("frozen", [False, True])
def test_no_input_features_gives_the_masked_bias(rng, regime, frozen):
    """in_features 0 on the grouped path outside frozen_weights() was a oneDNN error; the spec's answer
    is the bias, masked."""
    from condcore.ops import frozen_weights

    weight, bias = torch.empty(48, 0), torch.randn(48, generator=rng)
    out_mask = torch.rand(4, 3, generator=rng) > 0.5
    with frozen_weights() if frozen else torch.no_grad():
        y = block_sparse_linear(torch.empty(4, 0), weight, bias, out_mask=out_mask, block_size=16, backend="torch",
                                regime=regime)
    torch.testing.assert_close(y, bias.expand(4, 48) * out_mask.repeat_interleave(16, dim=1))
