"""The whole-CondNet CPU forward (csrc/condnet_cpu.cpp): its weight packing and its launcher.

The network is a chain of linear maps over activations in block form: hidden layer l maps its input's
blocks (x as one block for the first layer) to n_blocks output blocks of width k, gated by its policy,
a map of the same input to one block of n_blocks logits; the output layer maps the last hidden
layer's blocks to one block of logits. Inference only, fp32; a gate keeps the blocks whose logit is
above a constant, or a fixed number of blocks, those of highest logit.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType

import torch
import torch.nn.functional as F

from condcore import phases
from condcore.ops.cpu import native
from condcore.ops.call import LinearCall
from condcore.ops.packed_weights import frozen, frozen_copy

LANES = 16  # output columns per packed panel (the kernel's kLanes)


@dataclass(frozen=True)
class PackedMap:
    weight: torch.Tensor  # (n_out, n_in, chunks, in_block, LANES): W[j, i].T in panels of LANES columns
    bias: torch.Tensor  # (n_out, chunks * LANES), zeros past each block's width


def pack_weight(weight: torch.Tensor, in_block: int, out_block: int) -> torch.Tensor:
    """weight (N, K) of y = x @ weight.T cut into in_block x out_block tiles (in_block divides K,
    out_block divides N) and laid out for the kernel, fp32: PackedMap.weight."""
    n, k = weight.shape
    if n % out_block or k % in_block:
        raise ValueError(f"a ({n}, {k}) weight does not cut into {out_block} x {in_block} blocks")
    n_out, n_in, chunks = n // out_block, k // in_block, -(-out_block // LANES)
    w = weight.detach().float().reshape(n_out, out_block, n_in, in_block)
    w = F.pad(w, (0, 0, 0, 0, 0, chunks * LANES - out_block)).reshape(n_out, chunks, LANES, n_in, in_block)
    return w.permute(0, 3, 1, 4, 2).contiguous()


def pack_map(weight: torch.Tensor, bias: torch.Tensor, in_block: int, out_block: int) -> PackedMap:
    """pack_weight's weight with its bias (N,), padded as the blocks are."""
    packed = pack_weight(weight, in_block, out_block)
    pad = packed.shape[2] * LANES - out_block
    return PackedMap(packed, F.pad(bias.detach().float().reshape(-1, out_block), (0, pad)).contiguous())


@dataclass(frozen=True, eq=False)
class PackedNetwork:
    layers: list[PackedMap]  # the hidden layers'
    gates: list[PackedMap]  # their policies' (one output block of n_blocks logits each)
    # Per layer, a block runs where its logit is above the threshold, or, where the budget is positive,
    # if it is among the budget blocks of highest logit (ties to the lower block).
    thresholds: list[float]
    budgets: list[int]
    output: PackedMap
    n_classes: int

    @functools.cached_property
    def arguments(self) -> tuple[list[torch.Tensor], ...]:
        maps = (*self.layers, self.output)
        return ([m.weight for m in maps], [m.bias for m in maps], [g.weight for g in self.gates],
                [g.bias for g in self.gates], [float(t) for t in self.thresholds], [int(b) for b in self.budgets])


def _native() -> ModuleType | None:
    """The built C++ module with this file's kernels, or None (not built, turned off, or an older
    build without them)."""
    module = native._load()
    return module if module is not None and hasattr(module, "pairs_forward") else None


def available() -> bool:
    return _native() is not None


def condnet_forward(x: torch.Tensor, network: PackedNetwork) -> tuple[torch.Tensor, list[torch.Tensor]] | None:
    """(logits (B, n_classes), one (B, n_blocks) bool mask per hidden layer) of the packed network on x
    (B, features), a mask being its gate's decision (threshold or budget); None where the C++ kernels are not
    built. x must be contiguous fp32 on the CPU."""
    module = _native()
    if module is None:
        return None
    if x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() != 2 or not x.is_contiguous():
        raise ValueError(f"x must be a contiguous 2-D fp32 CPU tensor, got {tuple(x.shape)} {x.dtype} on {x.device}")
    batch = x.shape[0]
    logits = torch.empty(batch, network.n_classes)
    masks = [torch.empty(batch, layer.weight.shape[0], dtype=torch.bool) for layer in network.layers]
    # Every thread even at batch 1, where a forward reads its active weight tiles from memory: two cores
    # draw more bandwidth than one (here 55-60 us against 78-99 us a batch-1 forward, tau = 0.25).
    recorder, threads, layers = phases.active(), torch.get_num_threads(), len(network.layers)
    marks = timings = None
    if recorder is not None:
        marks = torch.zeros(2 * layers + 2, dtype=torch.int64)
        timings = torch.zeros(threads, 2 * layers + 1, len(PAIR_PHASES), dtype=torch.int64)
    module.condnet_forward(x, *network.arguments, masks, logits, threads, marks, timings)
    if marks is not None:
        add_layer_phases(recorder, marks, timings)
    return logits, masks


def add_layer_phases(recorder: phases.PhaseRecorder, marks: torch.Tensor, timings: torch.Tensor) -> None:
    """The kernel's clock marks as the layer-by-layer forward's phases (layerN/gate, layerN/linear,
    output; a layer's relu is inside its linear), so profiles of the two read alike, each stage's
    threads' phases (the mean over the threads) beneath it: what they leave of the stage is the wait."""
    seconds = (marks[1:] - marks[:-1]).double().div(1e9).tolist()
    per_stage = (timings.double().mean(dim=0) / 1e9).tolist()  # (stages, phases)
    stages = [f"layer{layer}/{part}" for layer in range(len(seconds) // 2) for part in ("gate", "linear")]
    for layer in range(len(seconds) // 2):
        recorder.add(recorder.path(f"layer{layer}"), seconds[2 * layer] + seconds[2 * layer + 1])
    for stage, wall, thread_phases in zip([*stages, "output"], seconds, per_stage):
        recorder.add(recorder.path(stage), wall)
        for name, value in zip(PAIR_PHASES, thread_phases):
            recorder.add(recorder.path(f"{stage}/{name}"), value)


def pairs_apply(call: LinearCall) -> bool:
    """Whether the pair kernel takes this call: fp32 on the CPU, blocks a multiple of LANES wide, the C++
    kernels built, and inside `frozen_weights()` (the weight is packed once)."""
    # The arguments have passed block_sparse_linear's checks (bias has weight's dtype). Kept lean: at
    # batch 1 the Python of a call is most of it.
    x, weight, block_size = call.x, call.weight, call.block_size
    if not (x.dtype == torch.float32 and weight.dtype == torch.float32 and x.is_cpu and not block_size % LANES
            and not weight.shape[0] % block_size and not weight.shape[1] % block_size and frozen()):
        return False
    call.notes["native"] = module = _native()  # for pairs_linear: looked up once per call
    return module is not None


def pairs_linear(call: LinearCall) -> torch.Tensor:
    """block_sparse_linear's y by the pair kernel (each row runs only its active input x output block
    pairs), where pairs_apply holds (and left the module in the call's notes)."""
    with phases.phase("pairs"):
        x, weight, bias, in_mask, out_mask, block_size, out, _ = call
        packed = frozen_copy(weight, [weight], ("pairs", block_size), lambda: pack_weight(weight, block_size, block_size))
        y = out if out is not None else torch.empty(x.shape[0], weight.shape[0])
        threads, recorder = torch.get_num_threads(), phases.active()
        timings = None if recorder is None else torch.zeros(threads, len(PAIR_PHASES), dtype=torch.int64)
        with phases.phase("threads"):
            call.notes["native"].pairs_forward(x.contiguous(), packed, None if bias is None else bias.contiguous(),
                                    None if in_mask is None else in_mask.contiguous(),
                                    None if out_mask is None else out_mask.contiguous(), y, threads, timings)
        if timings is not None:
            native.add_thread_phases(recorder, timings, PAIR_PHASES)
        return y


# The pair kernel's per-thread phases, in the order of its timing columns (condnet_cpu.cpp's PairPhase):
# route (the rows active in a block pair), zero_fill (inactive output blocks), bias (the active ones'
# starting values), gemm (the pairs' products).
PAIR_PHASES = ("route", "zero_fill", "bias", "gemm")
