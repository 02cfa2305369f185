"""CondNet: an MLP whose hidden layers run only the blocks a per-example policy picks (Bengio et al. 2015).

Hidden layer l maps h_{l-1} to h_l = relu(W_l h_{l-1} + b_l) * expand(mask_l), with mask_l (B, n_blocks)
chosen by the layer's gate from its policy logits U_l h_{l-1} + c_l. mask_l is also the input mask of
layer l+1, so at inference each hidden layer is one block_sparse_linear with an input and an output
mask, and the output layer reads a block-sparse input.

Training computes only the active blocks, forward and backward, where the gate allows it
(`Gate.sparse_in_training`: REINFORCE, random dropout, top-k); straight-through gates need every
block's pre-activation for their gradient, so their layers run dense and are multiplied by the mask.
Under bf16 autocast the sparse layers take bf16 activations with the fp32 weights (block_sparse_linear's
mixed precision), so each active weight block is rounded as it is used and the weight gradient is
written in fp32 directly: no whole-weight casts. Measured here (2048x2048 layer, k=128, batch 64, one
thread, forward + backward): 8.5 / 10.4 / 12.5 ms at tau = 0.1 / 0.25 / 0.5 against 14.4 ms for the
dense bf16 layer; a bf16 sparse layer behind whole-weight casts had saved nothing.
Inference (`forward(..., mode=...)` outside training) runs the sparse kernels; inside `frozen_weights()`
an fp32 CPU model whose gates decide from their logits alone runs as one native call
(condcore.models.fused_inference). The policy reads h_{l-1} detached: it learns from its own objectives
without reshaping the network's features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from condcore.models.fused_inference import fused_forward
from condcore.ops import block_sparse_linear
from condcore.phases import phase
from condcore.policies import INFERENCE_MODES, POLICIES, GateOutput, make_gate


# Narrower layers train dense (times the mask): their whole GEMM costs less than dispatching the
# blocks one by one (measured here, bf16, batch 64, one thread, forward + backward: 64 -> 2048 took
# 1.2 ms dense and 3.3 ms block by block; 2048 -> 2048 at tau = 0.1 took 12.3 ms dense, 9.1 ms sparse).
SPARSE_TRAIN_MIN_IN_FEATURES = 512


# The hidden layers' activations: as functions for the forward (a module call costs microseconds a layer
# at batch 1) and as layers for a plain nn.Sequential; both 0 at 0, so a dropped block stays zeros.
ACTIVATIONS = {"relu": F.relu, "tanh": torch.tanh}
ACTIVATION_LAYERS = {"relu": nn.ReLU, "tanh": nn.Tanh}


def tau_fields(tau: float | list[float] | tuple[float, ...]) -> dict:
    """A target density as CondNetConfig takes it: one number is `tau`, one per hidden layer `layer_taus`."""
    return {"layer_taus": [float(t) for t in tau]} if isinstance(tau, (list, tuple)) else {"tau": float(tau)}


@dataclass
class CondNetConfig:
    n_features: int
    n_classes: int
    hidden: list[int] = field(default_factory=lambda: [512, 512])
    block_size: int = 32
    policy: str = "reinforce"  # a name in condcore.policies.POLICIES
    # The target fraction of the hidden blocks that run. With layer_taus (one per hidden layer, as the
    # paper's CIFAR-10 net: 1/4, 1/32, 1/32) each layer aims at its own, and tau is derived: their mean
    # weighted by each layer's blocks, the fraction of all hidden blocks the net aims to run.
    tau: float = 0.25
    layer_taus: list[float] | None = None
    activation: str = "relu"  # of the hidden layers: relu, or tanh (the paper's code)
    p_min: float = 0.01  # reinforce only: probabilities are kept inside [p_min, p_max]
    p_max: float = 0.99
    temperature: float = 1.0  # straight-through only

    def __post_init__(self) -> None:
        if self.layer_taus is not None:
            self.layer_taus = [float(t) for t in self.layer_taus]
            if len(self.layer_taus) == len(self.hidden) and all(w % self.block_size == 0 for w in self.hidden):
                blocks = [w // self.block_size for w in self.hidden]
                self.tau = sum(t * n for t, n in zip(self.layer_taus, blocks)) / sum(blocks)

    def validate(self) -> None:
        if not self.hidden:
            raise ValueError("a CondNet needs at least one hidden layer")
        for width in self.hidden:
            if width <= 0 or width % self.block_size:
                raise ValueError(f"hidden width {width} is not a positive multiple of block size {self.block_size}")
        if self.layer_taus is not None and len(self.layer_taus) != len(self.hidden):
            raise ValueError(f"layer_taus has {len(self.layer_taus)} values for {len(self.hidden)} hidden layers")
        for tau in self.taus():
            if not 0.0 < tau <= 1.0:
                raise ValueError(f"tau must be in (0, 1], got {tau}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")

    def taus(self) -> list[float]:
        """Each hidden layer's target density."""
        return list(self.layer_taus) if self.layer_taus is not None else [self.tau] * len(self.hidden)

    def gate_options(self) -> dict:
        return {name: getattr(self, name) for name in POLICIES[self.policy].options}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ForwardTrace:
    logits: torch.Tensor  # (B, n_classes)
    gates: list[GateOutput]  # one per hidden layer

    @property
    def masks(self) -> list[torch.Tensor]:
        return [g.mask for g in self.gates]


class CondNet(nn.Module):
    def __init__(self, config: CondNetConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        widths = [config.n_features, *config.hidden]
        self.hidden = nn.ModuleList(nn.Linear(i, o) for i, o in zip(widths[:-1], widths[1:]))
        self.output = nn.Linear(widths[-1], config.n_classes)
        self.gates = nn.ModuleList(make_gate(config.policy, tau, **config.gate_options()) for tau in config.taus())
        self.activation = ACTIVATIONS[config.activation]
        self.policies = nn.ModuleList(
            nn.Linear(i, o // config.block_size) if gate.uses_policy else nn.Identity()
            for i, o, gate in zip(widths[:-1], widths[1:], self.gates)
        )
        for policy, gate in zip(self.policies, self.gates):
            if (logit := gate.logit_of(gate.tau)) is not None:
                # Start at the target density: from sigmoid(0) = 0.5 the sparsity terms drove the
                # tau = 0.1 policies through a collapse (every block off for ~10 of 40 epochs, 10% valid
                # accuracy) before they recovered.
                nn.init.constant_(policy.bias, logit)

    @property
    def n_blocks(self) -> list[int]:
        return [w // self.config.block_size for w in self.config.hidden]

    def network_parameters(self) -> list[nn.Parameter]:
        return [*self.hidden.parameters(), *self.output.parameters()]

    def policy_parameters(self) -> list[nn.Parameter]:
        return list(self.policies.parameters())

    def _gate(self, gate: nn.Module, policy: nn.Module, n_blocks: int, h: torch.Tensor, mode: str) -> GateOutput:
        logits = None
        if gate.uses_policy and torch.is_autocast_enabled(h.device.type):
            # fp32 even under autocast: log-probabilities and the sparsity terms need its precision.
            with torch.autocast(h.device.type, enabled=False):
                logits = policy(h.detach().float())
        elif gate.uses_policy:
            # Inference never runs under autocast: no context to enter (4 us a gate at batch 1).
            logits = policy(h.detach())
        out = gate(logits, h.shape[0], n_blocks, mode)
        out.mask = out.mask.to(h.device)
        return out

    def forward(self, x: torch.Tensor, mode: str = "threshold", backend: str = "auto",
                masks: list[torch.Tensor] | None = None) -> ForwardTrace:
        """mode: "train" (sampled masks, see the module docstring for its math) or an inference mode:
        "sample" (as the paper), "threshold" (p > 0.5) or "topk" (fixed budget of round(tau * blocks)).
        backend: the kernels' (block_sparse_linear). With "auto", an fp32 CPU inference inside
        `frozen_weights()` whose gates decide the mode from their logits alone (Gate.native_rule) runs as
        one native call (condcore.models.fused_inference). masks (inference only): one (B, blocks) bool
        mask per hidden layer that the layers run with instead of their gates' decisions: the spec of a
        low-precision forward is the float64 network on the masks that forward chose."""
        if mode != "train" and mode not in INFERENCE_MODES:
            raise ValueError(f"unknown mode {mode!r}; choose train or one of {', '.join(INFERENCE_MODES)}")
        if masks is not None:
            self._check_forced_masks(masks, x, mode)
        elif mode != "train" and backend == "auto":
            fused = fused_forward(self, x, mode)  # its phases are the layers' (condcore.ops.cpu.pairs)
            if fused is not None:
                logits, masks = fused
                return ForwardTrace(logits=logits, gates=[GateOutput(mask=mask) for mask in masks])
        k = self.config.block_size
        h, prev_mask, gates = x, None, []
        # The layers' modules zipped, not indexed: a ModuleList lookup costs ~4 us, and a batch-1
        # forward is ~1 ms.
        layers = zip(self.hidden, self.gates, self.policies, self.n_blocks)
        for layer, (linear, gate, policy, n_blocks) in enumerate(layers):
            with phase(f"layer{layer}"):  # profiling's phases (condcore.phases): free when not profiling
                with phase("gate"):
                    g = (GateOutput(mask=masks[layer].to(h.device)) if masks is not None
                         else self._gate(gate, policy, n_blocks, h, mode))
                gates.append(g)
                if mode == "train" and gate.sparse_in_training and linear.in_features >= SPARSE_TRAIN_MIN_IN_FEATURES:
                    h = self._sparse_train_layer(linear, h, g)
                elif mode == "train":
                    scale = g.multiplier if g.multiplier is not None else g.mask.to(h.dtype)
                    h = self.activation(linear(h)) * scale.repeat_interleave(k, dim=1)
                else:
                    out_mask = None if gate.always_on else g.mask
                    with phase("linear"):
                        if out_mask is None and prev_mask is None:
                            # Nothing to skip: the layer as nn.Linear runs it. The dense twin every
                            # speedup divides is this; through block_sparse_linear's small-batch kernel
                            # its batch-1 forward took 1.5x as long.
                            h = linear(h)
                        else:
                            h = block_sparse_linear(h, linear.weight, linear.bias, in_mask=prev_mask,
                                                    out_mask=out_mask, block_size=k, backend=backend)
                    with phase("activation"):
                        h = self.activation(h)
                    prev_mask = out_mask
        with phase("output"):
            return ForwardTrace(logits=self.output(h), gates=gates)

    def _check_forced_masks(self, masks: list[torch.Tensor], x: torch.Tensor, mode: str) -> None:
        if mode == "train":
            raise ValueError("masks are for inference: training samples its own")
        if len(masks) != len(self.hidden):
            raise ValueError(f"masks: {len(masks)} given for {len(self.hidden)} hidden layers")
        for layer, (mask, n_blocks, gate) in enumerate(zip(masks, self.n_blocks, self.gates)):
            if mask.dtype != torch.bool or tuple(mask.shape) != (x.shape[0], n_blocks):
                raise ValueError(f"masks[{layer}] must be a bool tensor of shape {(x.shape[0], n_blocks)}, "
                                 f"got {mask.dtype} {tuple(mask.shape)}")
            if gate.always_on and not bool(mask.all()):
                raise ValueError(f"masks[{layer}] turns off blocks of a layer whose gate is always on")

    def _sparse_train_layer(self, linear: nn.Linear, h: torch.Tensor, g: GateOutput) -> torch.Tensor:
        """activation(linear(h)) * mask, computing only the active blocks, forward and backward (the same values
        and gradients as the dense product times the mask). No input mask: the previous layer's dropped
        blocks are already zeros in h, and its own backward masks their gradient."""
        if torch.is_autocast_enabled(h.device.type):
            # As autocast would run nn.Linear; the fp32 weight is rounded block by block in the kernel.
            h = h.to(torch.get_autocast_dtype(h.device.type))
        y = self.activation(block_sparse_linear(h, linear.weight, linear.bias, out_mask=g.mask,
                                                block_size=self.config.block_size))
        if g.multiplier is not None:
            y = y * g.multiplier.to(y.dtype).repeat_interleave(self.config.block_size, dim=1)
        return y

    def density(self, trace: ForwardTrace) -> list[float]:
        """Realized fraction of active blocks per hidden layer."""
        return [m.float().mean().item() for m in trace.masks]
