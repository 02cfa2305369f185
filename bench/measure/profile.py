"""Profiles of a kernel case and of a trained model (`bench run --profile`, `bench profile`).

A kernel case is profiled after it was checked and timed: ours and the dense baseline, each built
afresh, are split into phases, traced, counted and measured for memory (bench.measure.profiling). A model is
profiled at a few batch sizes beside its dense twin, phases per layer: gate, the block-sparse layer
(with the kernel's own phases inside), activation, and the output layer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.plan.cases import KernelCase
from bench.measure.kernel import error_line
from bench.machine.counters import Counts, counting
from bench.measure.profiling import Call, extra_memory_bytes, phase_breakdowns, sync, write_trace
from bench.core.schema import KernelProfile, ModelProfile, ProviderProfile
from condcore.ops import frozen_weights
from condcore.timing import median

PROFILED = ("ours", "dense")
COUNTED_CALLS_S = 0.2  # how long perf counts each provider's calls
TRACES = "traces"  # the folder of a run that holds them


def slug(text: str) -> str:
    """A file name for a case id or model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def profile_calls(makers: dict[str, Callable[[], Call]], device: str, traces: dict[str, Path], folder: Path,
                  timed: dict[str, float | None], per_call: int = 1) -> list[ProviderProfile]:
    """The profiles of the providers in `makers` (name -> a function building its call afresh), their
    phases measured interleaved (bench.measure.profiling.phase_breakdowns), the rest one after the other. A call
    that runs `per_call` batches (a model over several test batches) is reported per batch."""
    memory = {}
    for name, make_call in makers.items():
        with frozen_weights():
            memory[name] = extra_memory_bytes(make_call, device)
    profiles = []
    with frozen_weights():
        calls = {name: make_call() for name, make_call in makers.items()}
        for call in calls.values():
            call()  # warm: packs weights, fills caches
        breakdowns = phase_breakdowns(calls, device)
        for name, call in calls.items():
            counts, n = _counted(call, device)
            gpu = write_trace(call, traces[name], device, calls=1 if per_call > 1 else 3)
            b = breakdowns[name]
            profiles.append(ProviderProfile(
                provider=name, total_s=b.total_s / per_call, plain_s=b.plain_s / per_call, timed_s=timed.get(name),
                calls=b.calls * per_call, phases={path: s / per_call for path, s in b.phases.items()},
                extra_memory_bytes=memory[name],
                counters={event: value / (n * per_call) for event, value in counts.values.items()},
                counters_note=counts.note, gpu_kernels={k: v / per_call for k, v in gpu.items()},
                trace=str(traces[name].relative_to(folder))))
    return profiles


def _counted(call: Call, device: str) -> tuple[Counts, int]:
    """perf's counts over at least 3 calls lasting COUNTED_CALLS_S, and how many calls that was."""
    calls = 0
    with counting() as counts:
        deadline = time.perf_counter() + COUNTED_CALLS_S
        while calls < 3 or time.perf_counter() < deadline:
            call()
            calls += 1
        sync(device)
    return counts, calls


def profile_kernel_case(case: KernelCase, build: Callable[[str], Call], samples: dict[str, list[float]],
                        folder: Path) -> KernelProfile:
    """The case's profile: its providers in PROFILED, each from `build(name)` (a fresh, poisoned output
    each time), beside their timed medians in `samples`."""
    profile = KernelProfile(case_id=case.case_id, device=case.device)
    try:
        profile.providers = profile_calls(
            {name: lambda name=name: build(name) for name in PROFILED}, case.device,
            {name: folder / TRACES / f"{slug(case.case_id)}-{name}.json.gz" for name in PROFILED}, folder,
            {name: median(samples[name]) if samples.get(name) else None for name in PROFILED})
        if case.device == "cuda":
            profile.triton = triton_builds(case)
    except Exception as exc:  # a profile that fails is a note in its row; the case's timing stands
        profile.error = error_line(exc)
    return profile


def triton_builds(case: KernelCase, arch: int | None = None) -> list[dict]:
    """The Triton kernel the case launched: the config its autotuner chose and what that compiles to
    for this GPU (`arch`, e.g. 90; default: the current device's), read as the compile check reads it:
    registers, spills, shared memory."""
    from bench.measure.compile_check import LaunchCase, check_cases
    from condcore.ops import pick_regime
    from condcore.ops.triton import grouped as triton_grouped, union as triton_union

    regime = pick_regime(case.regime, case.batch)
    kernel = triton_union._union_kernel if regime == "union" else triton_grouped._grouped_kernel
    chosen = getattr(kernel, "best_config", None)
    if chosen is None:
        return [{"regime": regime, "error": "the autotuner has not chosen a config (no launch of this kernel ran)"}]
    if arch is None:
        major, minor = torch.cuda.get_device_capability()
        arch = major * 10 + minor
    tiles = (chosen.kwargs["BLOCK_N"], chosen.kwargs["BLOCK_K"])
    rows = check_cases([LaunchCase(regime, case.batch, case.in_features, case.out_features, case.block_size,
                                   case.dtype, case.masks, tiles=tiles)], arch=arch, workers=1)
    return [{"regime": regime, "config": r.config, "ok": r.ok, "error": r.error, "registers": r.registers,
             "spills": r.spills, "stack_bytes": r.stack_bytes, "shared_bytes": r.shared_bytes} for r in rows]


MODEL_BATCHES = (1, 256)


def profile_model(name: str, model, mode: str, batches_of: Callable[[int], list[torch.Tensor]],
                  timed: dict[tuple[str, int], float], folder: Path, batch_sizes: tuple[int, ...] = MODEL_BATCHES
                  ) -> list[ModelProfile]:
    """The model's forward and its dense twin's at each batch size, over the same test batches the
    timing runs (`batches_of(batch)`), per batch; `timed[(provider, batch)]` their timed medians."""
    from condcore.speed import dense_twin

    model.eval()
    nets = {"dense": dense_twin(model), "ours": model}
    profiles = []
    for batch in batch_sizes:
        profile = ModelProfile(name=name, batch=batch)
        xs = batches_of(batch)
        device = "cuda" if xs[0].is_cuda else "cpu"
        try:
            def make_call(net, xs=xs):
                @torch.no_grad()
                def forward_all():
                    return [net(x, mode=mode) for x in xs]
                return forward_all

            profile.providers = profile_calls(
                {provider: lambda net=net: make_call(net) for provider, net in nets.items()}, device,
                {provider: folder / TRACES / f"{slug(name)}-B{batch}-{provider}.json.gz" for provider in nets}, folder,
                {provider: timed.get((provider, batch)) for provider in nets}, per_call=len(xs))
        except Exception as exc:  # noqa: BLE001 (a failed profile is a note; the model's row stands)
            profile.error = error_line(exc)
        profiles.append(profile)
    return profiles
