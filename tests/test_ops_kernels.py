"""Every kernel against the float64 reference, on fresh random inputs and the edge cases."""

from __future__ import annotations

import pytest
import torch

from condcore.ops import block_sparse_linear
from condcore.ops.problems import LinearProblem, make_problem
from condcore.ops.reference import reference_linear

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOLERANCES = {  # (rtol, atol) against the float64 reference, outputs of order 1
    torch.float64: (1e-10, 1e-10),
    torch.float32: (1e-4, 1e-4),
    torch.float16: (1e-2, 1e-2),
    torch.bfloat16: (4e-2, 4e-2),
}
KERNELS = [
    pytest.param("torch", "grouped", id="torch-grouped"),  # the C++ kernel (cpu_native) on CPU
    pytest.param("torch", "grouped", id="torch-grouped-ops"),  # its torch-ops fallback
    pytest.param("torch", "union", id="torch-union"),
    pytest.param("triton", "grouped", id="triton-grouped", marks=pytest.mark.triton),
    pytest.param("triton", "union", id="triton-union", marks=pytest.mark.triton),
]


@pytest.fixture(autouse=True)
def torch_ops_fallback(request, monkeypatch):
    """Cases whose id names torch-grouped-ops run with the C++ CPU kernel turned off."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and "torch-grouped-ops" in callspec.id:
        monkeypatch.setenv("CONDBENCH_NATIVE", "0")


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
