"""Compile the Triton kernels for a GPU that is not here (default: H100, sm_90) and read their machine code.

    python -m bench compile-check            # every autotune config, suites/gpu.yaml's launches
    python -m bench compile-check --suite suites/kernels-cuda.yaml
    python -m bench compile-check --arch 90 --json out.json

Why: development and CI machines have no GPU. The interpreter proves the kernels compute the right
numbers, but not that they compile for the chip, nor how: whether the accumulator stays in registers
(no spills to local memory), whether tl.dot reaches Hopper's warpgroup tensor-core instructions (HGMMA
in SASS; HMMA or FFMA is a slower path) and whether loads are software-pipelined through shared memory
(LDGSTS, cp.async). Triton's compiler and ptxas ship inside the triton wheel, so all of that can be
read from the cubin without a GPU.

Each launch is planned by the kernels' own launchers on CPU tensors (KernelLaunch), then specialized
the way Triton's JIT would specialize it on a GPU (argument types, 16-byte divisibility, strides of 1
as constants) and compiled once per autotune config that fits, in worker processes. Uses Triton internals
(create_function_from_signature, JITFunction._pack_args): a Triton version without them raises a
clear RuntimeError instead of compiling something else.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import triton

from bench.plan.cases import kernel_cases
from bench.plan.suite import load_suite
from condcore.ops import pick_regime
from condcore.masks import iid_block_mask
from condcore.ops.triton.common import KernelLaunch, fitting_configs

# SASS opcodes worth counting: tensor-core MMAs, async copies into shared memory, spill traffic.
OPCODES = ("HGMMA", "HMMA", "LDGSTS", "UTMALDG", "LDL", "STL")
# Largest shared memory a block may opt in to (bytes), by compute capability; Triton's autotuner skips a
# config over it at run time, so it is reported, not an error.
GPU_SUITE = Path(__file__).resolve().parents[2] / "suites" / "gpu.yaml"
SHARED_LIMIT = {80: 166912, 86: 101376, 89: 101376, 90: 232448}


@dataclass(frozen=True)
class LaunchCase:
    """A launch to compile: the layer shape and masks it is planned for."""

    regime: str  # "grouped" or "union"
    batch: int
    in_features: int
    out_features: int
    block_size: int
    dtype: str  # "float32", "bfloat16", "float16"
    masks: str  # "out" or "both"
    bias: bool = True
    tiles: tuple[int, int] | None = None  # only the first config with this (BLOCK_N, BLOCK_K); None: all


@dataclass
class CompiledConfig:
    case: LaunchCase
    config: str  # BLOCK_N, BLOCK_K, warps, stages
    ok: bool
    error: str = ""
    registers: int = 0
    stack_bytes: int = 0  # per-thread stack frame: spilled registers live there
    shared_bytes: int = 0
    opcodes: dict[str, int] | None = None

    @property
    def spills(self) -> bool:
        return self.stack_bytes > 0 or bool(self.opcodes and (self.opcodes["LDL"] or self.opcodes["STL"]))


@contextlib.contextmanager
def _for_the_gpu():
    """TRITON_INTERPRET=1 (as under the test suite) makes launchers pick interpreter-only settings (short
    row tiles, bf16 widened to fp32) and Triton build interpreter functions: planning for the GPU and
    the compiling workers' start run with it unset."""
    saved = os.environ.pop("TRITON_INTERPRET", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["TRITON_INTERPRET"] = saved


def plan(case: LaunchCase) -> KernelLaunch:
    """The first launch the case's launcher would make on a GPU, planned on CPU tensors (nothing runs)."""
    with _for_the_gpu():
        return _plan(case)


def _plan(case: LaunchCase) -> KernelLaunch:
    from condcore.ops.triton import grouped as triton_grouped, union as triton_union

    # Planning reads shapes, dtypes, strides, alignment and the masks, never the values: empty tensors
    # (filling 8192 x 4096 and 14336 x 4096 with random numbers took a second per case).
    dtype = getattr(torch, case.dtype)
    generator = torch.Generator().manual_seed(0)
    x = torch.empty(case.batch, case.in_features, dtype=dtype)
    weight = torch.empty(case.out_features, case.in_features, dtype=dtype)
    bias = torch.empty(case.out_features, dtype=dtype) if case.bias else None
    in_mask = (iid_block_mask(case.batch, case.in_features // case.block_size, 0.5, generator=generator)
               if case.masks == "both" else None)
    out_mask = iid_block_mask(case.batch, case.out_features // case.block_size, 0.5, generator=generator)
    if case.regime == "union":
        rows = slice(0, min(case.batch, triton_union.MAX_BATCH))
        y = torch.empty(rows.stop, case.out_features, dtype=dtype)
        return triton_union.plan_launch(x[rows], weight, bias, None if in_mask is None else in_mask[rows],
                                        out_mask[rows], case.block_size, y)
    y = torch.empty(case.batch, case.out_features, dtype=dtype)
    launch = triton_grouped.plan_launch(x, weight, bias, in_mask, out_mask, case.block_size, y)
    assert launch is not None  # half the blocks are on
    return launch


def gpu_configs(case: LaunchCase) -> list[triton.Config]:
    from condcore.ops.triton import grouped as triton_grouped, union as triton_union

    module = triton_union if case.regime == "union" else triton_grouped
    return module.configs(for_interpreter=False)


def compile_launch(launch: KernelLaunch, config: triton.Config, target) -> object:
    """Compile one launch with one autotune config for `target`, specialized as Triton's JIT would."""
    from triton.compiler import ASTSource, make_backend

    try:
        from triton.runtime.jit import create_function_from_signature
    except ImportError as exc:
        raise RuntimeError(f"triton {triton.__version__} lacks the JIT internals this check uses: {exc}") from exc
    jit = triton.JITFunction(launch.kernel.fn.fn)
    kwargs = {**launch.constexprs, **config.all_kwargs()}
    backend = make_backend(target)
    binder = create_function_from_signature(jit.signature, jit.params, backend)
    bound_args, specialization, options = binder(*launch.args, **kwargs)
    options, signature, constexprs, attrs = jit._pack_args(backend, kwargs, bound_args, specialization, options)
    return triton.compile(ASTSource(jit, signature, constexprs, attrs), target=target, options=options.__dict__)


def inspect_cubin(cubin: bytes) -> tuple[int, int, int, dict[str, int]]:
    """(registers, stack bytes, static shared bytes, opcode counts) of the kernel in a cubin, from one
    cuobjdump call that prints both the resource line and the SASS."""
    from triton import knobs

    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        listing = subprocess.run([knobs.nvidia.cuobjdump.path, "-res-usage", "-sass", f.name], capture_output=True,
                                 text=True, check=True).stdout
    usage = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+)", listing)
    if usage is None:
        raise RuntimeError("cuobjdump -res-usage printed no resource line")
    counts = Counter(re.findall(r"\b(" + "|".join(OPCODES) + r")\b", listing))
    registers, stack, static_shared = (int(g) for g in usage.groups())
    return registers, stack, static_shared, {op: counts.get(op, 0) for op in OPCODES}


def describe(config: triton.Config) -> str:
    tiles = " ".join(f"{k}={v}" for k, v in config.kwargs.items())
    return f"{tiles} warps={config.num_warps} stages={config.num_stages}"


def check_cases(cases: list[LaunchCase], arch: int = 90, workers: int | None = None) -> list[CompiledConfig]:
    """Compile each case's launch with each GPU config that fits it; a failure is a row, not an error.

    Runs in fresh worker processes started without TRITON_INTERPRET: a process that imported Triton
    under the interpreter holds interpreter versions of triton.language's own jit functions, which the
    GPU code generator cannot use. One case per task, so the cores share the compiling."""
    context = multiprocessing.get_context("spawn")
    with _for_the_gpu(), ProcessPoolExecutor(workers or os.cpu_count() or 1, mp_context=context) as pool:
        futures = [pool.submit(_check_case, case, arch) for case in cases]
        return [row for future in futures for row in future.result()]


def _check_case(case: LaunchCase, arch: int) -> list[CompiledConfig]:
    from triton.backends.compiler import GPUTarget

    launch = plan(case)
    target = GPUTarget("cuda", arch, 32)
    candidates = fitting_configs(gpu_configs(case), {}, **launch.constexprs)
    if case.tiles is not None:
        candidates = [c for c in candidates if (c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]) == case.tiles][:1]
        if not candidates:
            return [CompiledConfig(case, f"tiles {case.tiles}", ok=False, error="no kept GPU config has these tiles")]
    rows = []
    for config in candidates:
        try:
            compiled = compile_launch(launch, config, target)
            registers, stack, static_shared, opcodes = inspect_cubin(compiled.asm["cubin"])
        except Exception as exc:  # noqa: BLE001 (a config that does not compile is a failed row)
            rows.append(CompiledConfig(case, describe(config), ok=False, error=f"{type(exc).__name__}: {exc}"[:300]))
            continue
        shared = static_shared + compiled.metadata.shared
        rows.append(CompiledConfig(case, describe(config), ok=True, registers=registers, stack_bytes=stack,
                                   shared_bytes=shared, opcodes=opcodes))
    return rows


def suite_cases(suite_file: Path) -> list[LaunchCase]:
    """The distinct Triton launches a suite's CUDA cases make (shape, block size, dtype, mask sides and the
    regime each batch takes), in the suite's order."""
    launches: dict[LaunchCase, None] = {}
    for c in kernel_cases(load_suite(suite_file)):
        if c.device == "cuda" and c.backend in ("auto", "triton"):
            launches[LaunchCase(pick_regime(c.regime, c.batch), c.batch, c.in_features, c.out_features,
                                c.block_size, c.dtype, c.masks)] = None
    return list(launches)

