"""End-to-end inference speed of a trained CondNet against the dense net of the same shape."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from condcore.models import CondNet, CondNetConfig
from condcore.ops import frozen_weights
from condcore.problems import RELATIVE_TOLERANCE, relative_error_to
from condcore.timing import median, ratio_samples, speedup_interval, time_interleaved


LOW_PRECISION = (torch.float16, torch.bfloat16)  # held to their own masks (check_inference)


@dataclass
class SpeedResult:
    batch: int
    dense_s: float  # medians, per batch
    sparse_s: float
    speedup: float  # the median per-round ratio of interleaved rounds
    interval: tuple[float, float]  # its 95% interval (condcore.timing.speedup_interval)


def dense_twin(model: CondNet) -> CondNet:
    """The dense net with the same layer shapes and weights (no policies, no masks)."""
    cfg = CondNetConfig(**{**model.config.to_dict(), "policy": "dense", "tau": 1.0})
    weight = next(model.parameters())
    twin = CondNet(cfg).to(device=weight.device, dtype=weight.dtype)
    twin.hidden.load_state_dict(model.hidden.state_dict())
    twin.output.load_state_dict(model.output.state_dict())
    return twin.eval()


@torch.no_grad()
def check_inference(model: CondNet, batches: list[torch.Tensor], mode: str, *, rtol: float = 1e-4,
                    atol: float = 1e-4) -> list[torch.Tensor]:
    """Raises ValueError unless the model's timed forward (the native one where it applies) gives, on
    every batch, the same masks and close logits as its layers run on the reference kernel (the spec).
    Returns the spec's logits per batch: what any other way of running the model must compute.

    A model in a 16-bit dtype is held to its own masks instead: a block whose policy probability sits
    within the dtype's rounding of the threshold may go either way between two correct kernels, so the
    spec is the float64 network (the same rounded weights) run on the masks the timed forward chose,
    and the logits must agree within the dtype's tolerance relative to their largest (as a kernel case's)."""
    model.eval()
    wide = low_precision_spec(model)
    specs = []
    with frozen_weights(), torch.random.fork_rng():
        for x in batches:
            # The same draws for both, where the mode samples its masks.
            torch.manual_seed(0)
            timed = model(x, mode=mode)
            if wide is not None:
                spec = wide(x.double(), mode=mode, backend="reference", masks=timed.masks)
                specs.append(spec.logits)
                error, tolerance = relative_error_to(timed.logits, spec.logits), RELATIVE_TOLERANCE[x.dtype]
                if not error <= tolerance:  # written so that NaN fails
                    raise ValueError(f"logits differ from the float64 reference on the same masks by {error:.3g} of "
                                     f"their largest (tolerance {tolerance} in {str(x.dtype).removeprefix('torch.')}) "
                                     f"at batch {len(x)}")
                continue
            torch.manual_seed(0)
            spec = model(x, mode=mode, backend="reference")
            for layer, (a, b) in enumerate(zip(timed.masks, spec.masks)):
                a, b = a.cpu(), b.cpu()
                if not torch.equal(a, b):
                    raise ValueError(f"layer {layer}'s masks differ from the reference in "
                                     f"{int((a != b).sum())} of {a.numel()} blocks at batch {len(x)}")
            if not torch.allclose(timed.logits.double(), spec.logits.double(), rtol=rtol, atol=atol):
                worst = float((timed.logits.double() - spec.logits.double()).abs().max())
                raise ValueError(f"logits differ from the reference by up to {worst:.3g} at batch {len(x)}")
            specs.append(spec.logits)
    return specs


def low_precision_spec(model: CondNet) -> CondNet | None:
    """For a model in float16 or bfloat16, a float64 copy of it (the same rounded weights), which runs its
    spec on given masks; None for float32 and float64 models, whose spec is their own reference forward."""
    if next(model.parameters()).dtype not in LOW_PRECISION:
        return None
    return copy.deepcopy(model).double().eval()


@torch.no_grad()
def inference_speedup(model: CondNet, batches: list[torch.Tensor], mode: str, *, rounds: int = 30) -> SpeedResult:
    """Whole forward passes, policies included, timed interleaved with the dense twin's, after
    `check_inference` (its ValueError is the caller's failed row). Each timed call runs every batch in
    `batches` (e.g. 16 different single examples), so a result does not hang on how many blocks one
    particular input happens to use; times are per batch."""
    check_inference(model, batches, mode)
    dense = dense_twin(model)
    device = "cuda" if batches[0].is_cuda else "cpu"

    def over_all(net: CondNet):
        return lambda: [net(x, mode=mode) for x in batches]

    with frozen_weights():
        samples = time_interleaved({"dense": over_all(dense), "sparse": over_all(model)}, device, rounds)
    n = len(batches)
    return SpeedResult(batch=batches[0].shape[0], dense_s=median(samples["dense"]) / n,
                       sparse_s=median(samples["sparse"]) / n,
                       speedup=median(ratio_samples(samples["dense"], samples["sparse"])),
                       interval=speedup_interval(samples["dense"], samples["sparse"], device))


@torch.no_grad()
def flop_ideal(model: CondNet, x: torch.Tensor, mode: str) -> float:
    """The dense net's FLOPs per example over the CondNet's, as its masks on x require them, policies
    included: the speedup a model could reach if time followed FLOPs. Layer l runs only its examples'
    active (input block, output block) pairs (2 * active inputs * active outputs); the policy of a
    gated layer is a dense map of the layer's whole input to its block logits; the output layer reads
    the last hidden layer's active blocks."""
    model.eval()
    masks = model(x, mode=mode).masks
    k, widths = model.config.block_size, [model.config.n_features, *model.config.hidden]
    dense = sum(2 * a * b for a, b in zip(widths, widths[1:])) + 2 * widths[-1] * model.config.n_classes

    def active(layer: int) -> torch.Tensor:  # per example, the features layer `layer` outputs
        if model.gates[layer].always_on:
            return torch.full((len(x),), float(widths[layer + 1]))
        return masks[layer].sum(dim=1).double() * k

    inputs = torch.full((len(x),), float(widths[0]))
    sparse = torch.zeros(len(x), dtype=torch.float64)
    for layer in range(len(widths) - 1):
        outputs = active(layer)
        sparse += 2 * inputs * outputs
        if model.gates[layer].uses_policy:
            sparse += 2 * widths[layer] * model.n_blocks[layer]
        inputs = outputs
    sparse += 2 * inputs * model.config.n_classes
    return dense / float(sparse.mean())
