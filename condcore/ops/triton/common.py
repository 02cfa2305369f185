"""What both Triton launchers share: interpreter detection, the dot precision, argument checks."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import torch
import triton


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def dot_precision(dtype: torch.dtype) -> str:
    """fp32 inputs follow torch's own TF32 switch, so 'fp32' means the same here as in torch.matmul."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"


def needs_upcast(dtype: torch.dtype) -> bool:
    """The CPU interpreter computes bf16 arithmetic wrongly (loads and stores are fine), so under it bf16
    tiles are widened to fp32 before tl.dot; bf16 products are exact in fp32, so the result is the same."""
    return interpreting() and dtype == torch.bfloat16


def check_triton_block_size(block_size: int) -> None:
    # tl.dot needs tile sides of at least 16, and a tile must not straddle two blocks.
    if block_size % 16:
        raise ValueError(f"the triton backend needs block_size to be a multiple of 16, got {block_size}")


def mask_as_bytes(mask: torch.Tensor | None, fallback: torch.Tensor) -> torch.Tensor:
    """Bool masks go to Triton as uint8 (a zero-copy view); `fallback` stands in when there is none."""
    return mask.contiguous().view(torch.uint8) if mask is not None else fallback


# Measured with triton_compile_check (sm_90, triton 3.9): fp32 "ieee" configs with up to 16 accumulator
# elements per thread compiled without spills; at 32, all but one spilled (up to 13 KB of stack).
FFMA_ACCUMULATORS_PER_THREAD = 16


def accumulators_per_thread(config: triton.Config, rows: int) -> float:
    return rows * config.kwargs["BLOCK_N"] / (32 * config.num_warps)


def fitting_configs(configs: list[triton.Config], named_args: dict, **kwargs) -> list[triton.Config]:
    """Autotune pruning: a tile must lie inside one block, so BLOCK_N and BLOCK_K must divide the block size.
    Every config list holds a 16 x 16 tile, which fits any block size the launchers accept. For
    full-precision fp32 ("ieee"), tiles whose accumulator would spill are dropped too."""
    block_size = kwargs.get("BLOCK_SIZE", named_args.get("BLOCK_SIZE"))
    fits = [c for c in configs if block_size % c.kwargs["BLOCK_N"] == 0 and block_size % c.kwargs["BLOCK_K"] == 0]
    roomy = [c for c in fits if max(c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]) > 16]
    if roomy:  # 16 x 16 tiles are the fallback for 16- and 48-wide blocks, too slow to be worth timing
        fits = roomy
    if kwargs.get("INPUT_PRECISION", named_args.get("INPUT_PRECISION")) == "ieee":
        # Full-precision fp32 dots run on FMA units, with the accumulator and operands in registers.
        rows = kwargs.get("BLOCK_M", kwargs.get("BLOCK_B", 16))
        small = [c for c in fits if accumulators_per_thread(c, rows) <= FFMA_ACCUMULATORS_PER_THREAD]
        fits = small or fits[:1]
    if not fits:
        raise ValueError(f"no Triton tile configuration fits block_size {block_size}")
    return fits


@dataclass(frozen=True)
class KernelLaunch:
    """One launch as a launcher planned it: the autotuned kernel, its grid, its arguments. Kept apart from
    running it so the same launch can also be compiled for a GPU that is not here (triton_compile_check)."""

    kernel: triton.runtime.Autotuner
    grid: Callable[[dict], tuple[int, ...]]
    args: tuple
    constexprs: dict

    def run(self) -> None:
        self.kernel[self.grid](*self.args, **self.constexprs)
