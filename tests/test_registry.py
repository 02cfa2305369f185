"""The kernel registry is the one list of kernels: dispatch, the suite schema and the tests read it."""

from __future__ import annotations

import typing

import pytest
import torch

from bench.plan.suite import Backend
from condcore.ops import BACKENDS, block_sparse_linear
from condcore.ops.registry import BENCHMARKED_BACKENDS, KERNELS, find
from condcore.problems import make_problem


def test_every_record_resolves_and_names_one_kernel():
    names = [k.name for k in KERNELS]
    assert len(set(names)) == len(names)
    for kernel in KERNELS:
        assert callable(kernel.load())
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
    from condcore.ops import cpu, registry

    calls = []
    real = cpu.grouped_linear_backward
    monkeypatch.setattr(cpu, "grouped_linear_backward", lambda *a: calls.append(1) or real(*a))
    # Kernels are resolved once and kept: resolve them again with the counting stand-in, and after the test
    # (the cache is cleared again when monkeypatch has put the real one back).
    registry._resolve.cache_clear()
    request.addfinalizer(registry._resolve.cache_clear)
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
