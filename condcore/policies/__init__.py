"""Policy learners ("gates"), one small module each, all behind the same Gate interface."""

from __future__ import annotations

from condcore.policies.base import INFERENCE_MODES, Gate, GateOutput
from condcore.policies.fixed import DenseGate, RandomDropoutGate
from condcore.policies.reinforce import ReinforceGate
from condcore.policies.straight_through import StraightThroughGate
from condcore.policies.topk import TopKGate

POLICIES = {
    "dense": DenseGate,
    "random": RandomDropoutGate,
    "reinforce": ReinforceGate,
    "straight-through": StraightThroughGate,
    "topk": TopKGate,
}

__all__ = ["INFERENCE_MODES", "POLICIES", "Gate", "GateOutput", "make_gate"]


def make_gate(policy: str, tau: float, **options) -> Gate:
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    return POLICIES[policy](tau, **options)
