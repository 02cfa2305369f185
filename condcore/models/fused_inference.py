"""A trained CondNet's inference as one native call (condcore.ops.cpu.pairs), where it applies:
CPU, fp32, no gradient wanted, every gate deciding from its policy's logits alone (`Gate.native_rule`:
the "threshold" mode of the REINFORCE and straight-through gates, the top-k gate's budget), finite
weights, the C++ kernels built, and inside `frozen_weights()`, whose caller promises the weights stay as
they are, so the network is packed once (per mode) and reused."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from condcore.ops.cpu import pairs as condnet_native
from condcore.ops.cpu.pairs import PackedNetwork, pack_map
from condcore.ops.packed_weights import frozen_copy

if TYPE_CHECKING:
    from condcore.models.condnet import CondNet


def fused_forward(model: CondNet, x: torch.Tensor, mode: str) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
    """(logits, per-layer masks) of model on x in `mode` from the native forward, or None where it does
    not apply (the caller then runs the layers one by one)."""
    if (model.training or x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 2
            or model.config.activation != "relu"):  # the kernel's layers apply relu
        return None
    params = _parameters(model)
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in params)):
        return None
    network = frozen_copy(model, params, ("condnet", mode), lambda: _pack(model, mode))
    if network is None:  # outside frozen_weights(), or a model the kernel does not take
        return None
    return condnet_native.condnet_forward(x.contiguous(), network)


def _parameters(model: CondNet) -> list[torch.Tensor]:
    """What the forward reads, straight from the modules' dicts: Module.parameters() walks the module
    tree (20 us a call) and each Module attribute lookup costs ~1 us."""
    modules = model._modules
    maps = [*modules["hidden"]._modules.values(), *modules["policies"]._modules.values(), modules["output"]]
    return [t for m in maps for t in m._parameters.values() if t is not None]


def _pack(model: CondNet, mode: str) -> PackedNetwork | None:
    """The model's maps packed for the kernel, or None where its gates or weights do not fit it."""
    rules = [gate.native_rule(mode, n) for gate, n in zip(model.gates, model.n_blocks)]
    params = _parameters(model)
    if (None in rules or not condnet_native.available()
            or any(p.dtype != torch.float32 or p.device.type != "cpu" for p in params)):
        return None
    if not all(bool(torch.isfinite(p).all()) for p in params):
        # The layers treat a dropped block as zeros, and 0 * inf is NaN: the kernel, which skips the
        # block, would differ. Checked once, at packing.
        return None
    k, widths = model.config.block_size, [model.config.n_features, *model.config.hidden]
    in_blocks = [widths[0], *[k] * len(model.config.hidden)]  # x is the first layer's one input block
    layers = [pack_map(linear.weight, linear.bias, block, k) for linear, block in zip(model.hidden, in_blocks)]
    gates = [pack_map(policy.weight, policy.bias, block, policy.out_features)
             for policy, block in zip(model.policies, in_blocks)]
    output = pack_map(model.output.weight, model.output.bias, in_blocks[-1], model.config.n_classes)
    thresholds = [value if rule == "threshold" else 0.0 for rule, value in rules]
    budgets = [int(value) if rule == "topk" else 0 for rule, value in rules]
    return PackedNetwork(layers, gates, thresholds, budgets, output, model.config.n_classes)
