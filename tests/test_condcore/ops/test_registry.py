"""The kernel registry is the one list of kernels: dispatch, the suite schema and the tests read it."""

from __future__ import annotations

import typing

import pytest
import torch

from bench.plan.suite import Backend
from condcore.ops import BACKENDS, block_sparse_linear, frozen_weights, registry, skipping
from condcore.ops.cpu import native as cpu_native
from condcore.ops.kernel_log import kernels_used
from condcore.ops.reference import reference_linear
from condcore.ops.registry import BENCHMARKED_BACKENDS, KERNELS, find
from condcore.problems import make_problem


def test_every_record_resolves_and_names_one_kernel():
    names = [k.name for k in KERNELS]
    assert len(set(names)) == len(names)
    for kernel in KERNELS:
        assert all(callable(function) and (applies is None or callable(applies)) for _, applies, function in kernel._table)
        if kernel.sparse_backward:
            assert callable(kernel.load_sparse_backward())
        for regime in ("grouped", "union"):
            if kernel.regime in (regime, "any"):
                assert find(kernel.backend, regime) == kernel


def test_the_suite_and_dispatch_offer_what_the_registry_holds():
    assert set(typing.get_args(Backend)) == set(BENCHMARKED_BACKENDS) == set(BACKENDS) - {"reference"}
    with pytest.raises(ValueError, match="no torch kernel for the diagonal regime"):
        find("torch", "diagonal")


def test_dispatch_runs_the_registered_kernel_and_its_capabilities(rng, monkeypatch, request):
    """The sparse backward runs after the kernel whose record names one, and only with an output mask."""
    from condcore.ops.cpu import grouped as cpu

    calls = []
    real = cpu.grouped_linear_backward
    monkeypatch.setattr(cpu, "grouped_linear_backward", lambda *a: calls.append(1) or real(*a))
    p = make_problem(32, 32, 32, 16, in_density=0.5, out_density=0.5, generator=rng)
    for out_mask, regime, expected in ((p.out_mask, "grouped", 1), (None, "grouped", 0), (p.out_mask, "union", 0)):
        calls.clear()
        x = p.x.clone().requires_grad_()
        block_sparse_linear(x, p.weight, p.bias, in_mask=p.in_mask, out_mask=out_mask, block_size=16,
                            backend="torch", regime=regime).sum().backward()
        assert len(calls) == expected and x.grad is not None
    assert find("torch", "grouped").rounds_weight_itself and not find("torch", "union").rounds_weight_itself
    assert torch.float64 not in find("triton", "grouped").dtypes


def test_policy_learners_carry_their_inference_mode_and_options():
    """The policy registry (condcore.policies.POLICIES) is the one list: the suite's choices come from it,
    and each learner says how it is evaluated and which CondNetConfig fields it takes."""
    import dataclasses

    from bench.plan.suite import ModelSweep, Policy
    from condcore.models import CondNetConfig
    from condcore.policies import INFERENCE_MODES, POLICIES

    assert typing.get_args(Policy) == tuple(POLICIES) and ModelSweep().policies == list(POLICIES)
    fields = {f.name for f in dataclasses.fields(CondNetConfig)}
    for name, gate in POLICIES.items():
        assert gate.inference_mode in INFERENCE_MODES and set(gate.options) <= fields, name
    config = CondNetConfig(8, 2, hidden=[8], block_size=4, policy="straight-through", temperature=0.5)
    assert config.gate_options() == {"temperature": 0.5}


# Every path of the torch backend's dispatch table, reached by passing over the paths before it, on a
# call its test takes: fp32 inside frozen_weights() (the packed paths), no output mask for the dense GEMM,
# dense masks for the union's dense fallback.
TORCH_PATHS = [pytest.param(kernel, path.name, id=f"{kernel.regime}-{path.name}")
               for kernel in KERNELS if kernel.backend == "torch" for path in kernel.paths]


@pytest.mark.parametrize("kernel,path", TORCH_PATHS)
@pytest.mark.parametrize("batch", [1, 37])
def test_each_path_of_the_table_runs_where_it_is_reached_and_matches_the_spec(kernel, path, batch, rng):
    density = 0.95 if path == "union-dense-fallback" else 0.4
    p = make_problem(batch, 96, 64, 32, in_density=density, out_density=density, generator=rng)
    masks = {"in_mask": p.in_mask, "out_mask": None if path == "dense-gemm" else p.out_mask}
    before = [q.name for q in kernel.paths[: [q.name for q in kernel.paths].index(path)]]
    out = torch.full((batch, 64), float("nan"))
    with frozen_weights(), skipping(*before), kernels_used() as names:
        kernel(p.x, p.weight, p.bias, masks["in_mask"], masks["out_mask"], 32, out)
    if names != [path]:
        assert path.endswith("-cpp") or path.endswith("-cpp-packed"), names  # only the C++ kernels may be missing
        pytest.skip(f"{path} does not apply here: {cpu_native.status()}")
    want = reference_linear(p.x.double(), p.weight.double(), p.bias.double(), masks["in_mask"], masks["out_mask"], 32)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)


def test_skipping_every_path_is_a_clear_error_and_an_unknown_path_is_refused():
    p = make_problem(4, 32, 32, 16)
    with skipping("union-dense-fallback", "union-torch"), pytest.raises(ValueError, match="every path of torch-union"):
        find("torch", "union")(p.x, p.weight, p.bias, p.in_mask, p.out_mask, 16)
    with pytest.raises(ValueError, match="unknown kernel path"):
        with skipping("no-such-path"):
            pass
    with pytest.raises(ValueError, match="not in kernel_log.KERNEL_NAMES"):
        registry.Path("no-such-path", "condcore.ops.cpu:union_linear")
    with pytest.raises(ValueError, match="last path must take every call"):
        registry.Kernel("torch", "union", (registry.PAIRS,), ("cpu",), (torch.float32,))
