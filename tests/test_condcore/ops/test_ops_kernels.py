"""Every kernel against the float64 reference, on fresh random inputs and the edge cases."""

from __future__ import annotations

import pytest
import torch

from condcore.ops import block_sparse_linear, frozen_weights, skipping
from condcore.ops.kernel_log import kernels_used
from condcore.ops.reference import reference_linear
from condcore.ops.registry import KERNELS as REGISTERED
from condcore.problems import LinearProblem, make_problem

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOLERANCES = {  # (rtol, atol) against the float64 reference, outputs of order 1
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (4e-2, 4e-2),
}
# Every kernel of the registry but the reference (the spec they are checked against); on CPU torch-grouped
# is the C++ kernel (cpu_native), and torch-grouped-ops its torch-ops fallback.
KERNELS = [pytest.param(k.backend, k.regime, id=k.name, marks=[pytest.mark.triton] if k.backend == "triton" else [])
           for k in REGISTERED if k.backend != "reference"]
KERNELS.insert(1, pytest.param("torch", "grouped", id="torch-grouped-ops"))
# Inside frozen_weights(), fp32 CPU calls with blocks a multiple of 16 wide run the C++ pair kernel
# (cpu/pairs.py) in both regimes; with it passed over, the grouped paths run on packed blocks
# (grouped-cpp-packed, or grouped-torch-packed with the C++ kernels off) where oneDNN takes the dtype.
if DEVICE == "cpu":
    KERNELS[2:2] = [pytest.param("torch", regime, id=f"torch-{regime}-pairs") for regime in ("grouped", "union")]
    KERNELS[4:4] = [pytest.param("torch", "grouped", id="torch-grouped-packed"),
                    pytest.param("torch", "grouped", id="torch-grouped-ops-packed")]


@pytest.fixture(autouse=True)
def kernel_variant(request, monkeypatch):
    """Cases whose id names torch-grouped-ops run with the C++ CPU kernels turned off; those naming
    pairs run inside frozen_weights(), where the pair kernel may pack the weight; those naming packed
    run there too, passing over the pair kernel."""
    callspec = getattr(request.node, "callspec", None)
    variant = "" if callspec is None else callspec.id
    if "torch-grouped-ops" in variant:
        monkeypatch.setenv("CONDBENCH_NATIVE", "0")
    if "-pairs" in variant:
        with frozen_weights():
            yield
        return
    if "-packed" in variant:
        with frozen_weights(), skipping("pairs-cpp-packed"):
            yield
        return
    yield


@pytest.mark.parametrize("regime", ["grouped", "union"])
def test_the_pair_kernel_runs_where_it_applies(regime, rng):
    p = make_problem(9, 64, 96, 32, generator=rng)
    # (check() computes the spec too: "reference" among the names is the test's own call)
    with kernels_used() as names:
        check(p, "torch", regime)  # outside frozen_weights(): not packed, not run
    assert set(names) - {"reference"} and "pairs-cpp-packed" not in names
    with frozen_weights(), kernels_used() as names:
        check(p, "torch", regime)
    assert set(names) - {"reference"} == {"pairs-cpp-packed"}


def check(p: LinearProblem, backend: str, regime: str) -> torch.Tensor:
    """Runs the kernel into a NaN-poisoned buffer, so an element it never writes fails the comparison."""
    out = torch.full((p.x.shape[0], p.weight.shape[0]), float("nan"), dtype=p.x.dtype, device=p.x.device)
    y = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend, regime=regime, out=out)
    assert y.data_ptr() == out.data_ptr()
    assert y.dtype == p.x.dtype and y.shape == out.shape
    assert not torch.isnan(y).any(), "NaN in the output: an element was not written"
    rtol, atol = TOLERANCES[p.x.dtype]
    torch.testing.assert_close(y.double().cpu(), p.reference().cpu(), rtol=rtol, atol=atol)
    # Without out=, the kernel allocates its own result; it must agree with the poisoned-buffer run.
    fresh = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend, regime=regime)
    torch.testing.assert_close(fresh, y, rtol=0, atol=0)
    return y


@pytest.mark.parametrize("backend,regime", KERNELS)
@pytest.mark.parametrize("batch", [1, 5, 37, 70])
@pytest.mark.parametrize("density", [0.2, 0.5, 0.9])  # 0.9 takes the torch union path's dense fallback
def test_random_masks_both_sides(backend, regime, batch, density, rng):
    p = make_problem(batch, 64, 96, 16, in_density=density, out_density=density, generator=rng, device=DEVICE)
    check(p, backend, regime)


@pytest.mark.parametrize("backend,regime", KERNELS)
def test_clustered_masks(backend, regime, rng):
    p = make_problem(24, 128, 64, 16, mask_kind="clustered", generator=rng, device=DEVICE)
    check(p, backend, regime)


@pytest.mark.parametrize("backend,regime", KERNELS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_dtypes(backend, regime, dtype, rng):
    check(make_problem(19, 64, 48, 16, dtype=dtype, generator=rng, device=DEVICE), backend, regime)


@pytest.mark.parametrize("regime", ["grouped", "union"])
def test_float64_torch(regime, rng):
    check(make_problem(9, 24, 36, 4, dtype=torch.float64, generator=rng), "torch", regime)


@pytest.mark.parametrize("backend,regime", KERNELS)
@pytest.mark.parametrize(
    "in_density,out_density",
    [(None, 0.5), (0.5, None), (None, None), (1.0, 1.0)],
    ids=["out-only", "in-only", "no-masks", "all-on"],
)
def test_mask_combinations(backend, regime, in_density, out_density, rng):
    p = make_problem(21, 48, 80, 16, in_density=in_density, out_density=out_density, generator=rng, device=DEVICE)
    check(p, backend, regime)


@pytest.mark.parametrize("backend,regime", KERNELS)
def test_all_off_gives_exact_zeros_and_bias_only(backend, regime, rng):
    p = make_problem(6, 32, 64, 16, generator=rng, device=DEVICE)
    p.out_mask = torch.zeros_like(p.out_mask)
    y = check(p, backend, regime)
    assert (y == 0).all()
    p = make_problem(6, 32, 64, 16, out_density=None, generator=rng, device=DEVICE)
    p.in_mask = torch.zeros_like(p.in_mask)
    y = check(p, backend, regime)
    torch.testing.assert_close(y, p.bias.expand_as(y), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend,regime", KERNELS)
def test_one_active_block(backend, regime, rng):
    p = make_problem(17, 64, 64, 16, generator=rng, device=DEVICE)
    p.out_mask = torch.zeros_like(p.out_mask)
    p.out_mask[3, 2] = True
    p.in_mask = torch.zeros_like(p.in_mask)
    p.in_mask[3, 1] = True
    y = check(p, backend, regime)
    assert (y[torch.arange(17) != 3] == 0).all()


@pytest.mark.parametrize("backend,regime", KERNELS)
def test_non_contiguous_x_and_weight(backend, regime, rng):
    p = make_problem(13, 64, 48, 16, bias=False, generator=rng, device=DEVICE)
    p.x = torch.cat([p.x, p.x], dim=1)[:, ::2]  # stride 2 along features
    p.weight = p.weight.t().contiguous().t()  # column-major
    assert not p.x.is_contiguous() and not p.weight.is_contiguous()
    check(p, backend, regime)


@pytest.mark.parametrize("backend,regime", KERNELS)
def test_nan_in_dropped_input_blocks_does_not_leak(backend, regime, rng):
    p = make_problem(11, 64, 32, 16, generator=rng, device=DEVICE)
    p.in_mask[:, 0] = False
    p.x[:, :16] = float("nan")  # only inside the dropped block
    check(p, backend, regime)


@pytest.mark.parametrize("backend,regime", KERNELS)
def test_nan_in_active_input_shows_up(backend, regime, rng):
    """NaN never passes silently: where an active input is NaN, the active outputs are NaN."""
    p = make_problem(3, 32, 32, 16, in_density=None, out_density=None, generator=rng, device=DEVICE)
    p.x[1, 5] = float("nan")
    y = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend, regime=regime)
    assert torch.isnan(y[1]).all() and not torch.isnan(y[[0, 2]]).any()


@pytest.mark.parametrize("backend,regime", KERNELS)
def test_unmasked_sides_need_not_be_block_multiples(backend, regime, rng):
    """A CondNet's first layer reads raw features (K = 64 with k = 48), its output layer may be N = 10."""
    check(make_problem(9, 40, 96, 48, in_density=None, generator=rng, device=DEVICE), backend, regime)
    check(make_problem(9, 96, 40, 48, out_density=None, generator=rng, device=DEVICE), backend, regime)


def test_torch_backend_odd_block_size(rng):
    for regime in ("grouped", "union"):
        check(make_problem(7, 15, 9, 3, generator=rng), "torch", regime)


@pytest.mark.parametrize("backend", ["reference", "torch", pytest.param("triton", marks=pytest.mark.triton)])
def test_auto_regime_matches_reference(backend, rng):
    for batch in (4, 40):
        p = make_problem(batch, 32, 32, 16, generator=rng, device=DEVICE)
        y = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend)
        torch.testing.assert_close(y.double(), p.reference(), rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.parametrize("regime", ["grouped", "union"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_triton_gpu_realistic_shapes(regime, dtype, rng):
    batch = 8 if regime == "union" else 1000
    check(make_problem(batch, 512, 768, 128, dtype=dtype, generator=rng, device="cuda"), "triton", regime)


@pytest.mark.parametrize("backend,regime", [*KERNELS, pytest.param("reference", "auto", id="reference")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("batch", [3, 40])
@pytest.mark.parametrize("out_density", [0.5, None], ids=["masked", "no-out-mask"])
def test_mixed_precision_fp32_weight(backend, regime, dtype, batch, out_density, rng):
    """An fp32 weight and bias with fp16/bf16 x: the weight is rounded to x's dtype, the result is in x's."""
    p = make_problem(batch, 64, 48, 16, out_density=out_density, dtype=dtype, generator=rng, device=DEVICE)
    weight = torch.randn(48, 64, generator=rng).to(DEVICE)  # fp32 values that x's dtype cannot hold
    bias = torch.randn(48, generator=rng).to(DEVICE)
    out = torch.full((batch, 48), float("nan"), dtype=dtype, device=DEVICE)
    y = block_sparse_linear(p.x, weight, bias, **p.kwargs(), backend=backend, regime=regime, out=out)
    assert y.dtype == dtype and not torch.isnan(y).any()
    want = reference_linear(p.x.double(), weight.to(dtype).double(), bias.to(dtype).double(), p.in_mask,
                            p.out_mask, p.block_size)
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(y.double().cpu(), want.cpu(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("backend,regime", KERNELS)
@pytest.mark.parametrize("batch", [1, 6, 40])
def test_strided_and_non_contiguous_bias_masks_x_and_weight(backend, regime, batch, rng):
    """Every input as a strided view: oneDNN's linear once read a stride-2 bias as if it were dense."""
    p = make_problem(batch, 64, 96, 16, generator=rng, device=DEVICE)
    p.bias = torch.stack([p.bias, torch.full_like(p.bias, 1e6)], dim=1)[:, 0]  # stride 2, poison between
    p.x = torch.stack([p.x, torch.full_like(p.x, 1e6)], dim=2)[:, :, 0]
    p.weight = p.weight.t().contiguous().t()
    p.in_mask = torch.stack([p.in_mask, ~p.in_mask], dim=2)[:, :, 0]
    p.out_mask = torch.stack([p.out_mask, ~p.out_mask], dim=2)[:, :, 0]
    assert p.bias.stride() == (2,) and not p.x.is_contiguous() and not p.weight.is_contiguous()
    assert not p.in_mask.is_contiguous() and not p.out_mask.is_contiguous()
    check(p, backend, regime)
    p.weight = p.weight.contiguous()  # the fast paths (oneDNN, the C++ kernel) take a dense weight only
    check(p, backend, regime)


def test_reference_skips_dropped_blocks_whatever_they_hold(rng):
    """The spec: a dropped input block adds nothing to its example's outputs, even inf or NaN weights."""
    p = make_problem(5, 48, 32, 16, generator=rng)
    p.in_mask[:, 1] = False
    p.in_mask[0, 1] = True  # row 0 uses block 1, the others drop it
    zeroed = p.weight.clone()
    zeroed[:, 16:32] = 0
    p.weight[:, 20] = float("nan")
    p.weight[3, 17] = float("inf")
    y = p.reference()
    assert torch.isnan(y[0][p.out_mask[0].repeat_interleave(16)]).all()  # row 0's active outputs see the NaN
    want = reference_linear(p.x[1:].double(), zeroed.double(), p.bias.double(), p.in_mask[1:], p.out_mask[1:], 16)
    torch.testing.assert_close(y[1:], want)


@pytest.mark.parametrize("backend,regime", KERNELS)
@pytest.mark.parametrize("poison", [float("nan"), float("inf"), -float("inf")], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dropped_by", ["every-row", "some-rows"])
@pytest.mark.parametrize("batch", [1, 7, 40])
def test_nonfinite_weight_in_dropped_block_follows_the_spec(backend, regime, poison, dropped_by, batch, rng):
    """Every path agrees with the spec: skipped, not 0 * inf = NaN (the union path at batch 1 was the only
    one that skipped; every other path returned NaN for the rows that drop the block)."""
    p = make_problem(batch, 64, 48, 16, generator=rng, device=DEVICE)
    p.in_mask[:, 2] = False
    if dropped_by == "some-rows":
        p.in_mask[0, 2] = True
    p.weight[:, 2 * 16 + 3] = poison
    want = p.reference()
    out = torch.full((batch, 48), 7.0, dtype=p.x.dtype, device=DEVICE)
    y = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend, regime=regime, out=out)
    torch.testing.assert_close(y.double().cpu(), want.cpu(), rtol=1e-4, atol=1e-4, equal_nan=True)
    users = p.in_mask[:, 2]
    assert torch.isfinite(y[~users]).all()
    active_of_users = p.out_mask[users].repeat_interleave(16, dim=1)
    assert (~torch.isfinite(y[users][active_of_users])).all()


@pytest.mark.parametrize("backend,regime", KERNELS)
@pytest.mark.parametrize(
    "alias",
    ["x", "weight-rows", "bias", "partial-x", "in_mask", "out_mask"],
)
def test_out_sharing_memory_with_an_input_is_refused(backend, regime, alias, rng):
    """Kernels write y while they still read x and the weight: an aliased out= gave relative errors up to
    1.31. Refused like torch's own ops refuse it."""
    batch, features = 8, 64
    buf = torch.randn(batch * features + 48, device=DEVICE)
    p = make_problem(batch, features, features, 16, generator=rng, device=DEVICE)
    p.x = buf[: batch * features].view(batch, features)
    if alias == "bias":
        store = torch.zeros(batch * features, device=DEVICE)
        p.bias, out = store[:features], store.view(batch, features)
    elif alias in ("in_mask", "out_mask"):
        store = torch.zeros(batch * features, device=DEVICE)
        masks = store.view(torch.uint8)[: batch * 4].view(torch.bool).view(batch, 4)
        masks.copy_(getattr(p, alias))
        setattr(p, alias, masks)
        out = store.view(batch, features)
    else:
        out = {"x": p.x, "weight-rows": p.weight[:batch], "partial-x": buf[48:].view(batch, features)}[alias]
    with pytest.raises(ValueError, match="out shares memory with"):
        block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend, regime=regime, out=out)


@pytest.mark.parametrize("backend,regime", KERNELS)
def test_out_beside_its_inputs_in_one_buffer_is_fine(backend, regime, rng):
    """Views of one buffer that do not overlap are not aliasing: x and out side by side."""
    batch, features = 6, 64
    buf = torch.full((2 * batch * features,), float("nan"), device=DEVICE)
    p = make_problem(batch, features, features, 16, generator=rng, device=DEVICE)
    buf[: batch * features].copy_(p.x.flatten())
    p.x = buf[: batch * features].view(batch, features)
    y = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend=backend, regime=regime,
                            out=buf[batch * features :].view(batch, features))
    torch.testing.assert_close(y.double().cpu(), p.reference().cpu(), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(DEVICE != "cpu", reason="the pair kernel is the CPU's")
@pytest.mark.parametrize("offset", [0, 1], ids=["aligned", "misaligned-out"])
def test_the_pair_kernel_zeroes_a_large_output(offset, rng, monkeypatch):
    """Outputs of 4 MB and more are zeroed by streaming stores where aligned, by plain ones where not:
    every inactive element of a NaN-poisoned buffer must come out 0, every active one right."""
    p = make_problem(520, 128, 2048, 64, in_density=None, out_density=0.1, generator=rng)
    storage = torch.full((p.x.shape[0] * 2048 + offset,), float("nan"))
    out = storage[offset:].view(p.x.shape[0], 2048)
    with frozen_weights(), kernels_used() as names:
        y = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped", out=out)
    assert names == ["pairs-cpp-packed"] and y.data_ptr() == out.data_ptr()
    assert out.numel() * 4 >= 4 << 20
    torch.testing.assert_close(y.double(), p.reference(), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(DEVICE != "cpu", reason="oneDNN's packed blocks are the CPU's")
@pytest.mark.parametrize(("native", "expected"), [("1", "grouped-cpp-packed"), ("0", "grouped-torch-packed")],
                         ids=["cpp", "torch-ops"])
def test_the_packed_variants_reach_the_packed_paths(native, expected, rng, monkeypatch):
    """What the torch-grouped-packed and torch-grouped-ops-packed cases above run, fp32."""
    from condcore.ops.cpu import native as cpu_native

    monkeypatch.setenv("CONDBENCH_NATIVE", native)
    if native == "1" and not cpu_native.applies(torch.empty(1)):
        pytest.skip(f"the C++ kernel is not here: {cpu_native.status()}")
    p = make_problem(40, 64, 96, 32, generator=rng)
    with frozen_weights(), skipping("pairs-cpp-packed"), kernels_used() as names:
        block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")
    assert names == [expected]
