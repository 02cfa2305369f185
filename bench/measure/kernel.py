"""One kernel case: build its inputs, check them against the float64 reference, then time dense and
sparse interleaved. Any failure becomes the row's status and reason; nothing here raises."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

import psutil
import torch

from bench.plan.cases import KernelCase
from bench.machine.contention import load_since, snapshot
from bench.machine.gpu_neighbours import flag_if_shared
from bench.measure.metrics import CaseWork, case_metrics, ideal_density, weight_share
from bench.core.providers import DENSE_CANDIDATES, PROVIDERS, fastest_dense
from bench.core.schema import KernelRow, ProviderCheck, RoundTimes
from condcore.mask_export import load_masks
from condcore.masks import weight_tile_density, work_density
from condcore.ops import frozen_weights, pick_regime
from condcore.ops.kernel_log import kernels_used, spelled
from condcore.problems import LinearProblem, check_output, make_problem
from condcore.timing import CacheFlush, cache_state, iqr, median, time_interleaved

_flush: CacheFlush | None = None


def cache_flush() -> CacheFlush:
    """The process's one flush buffer (twice the last-level cache: allocated once, not per case)."""
    global _flush
    if _flush is None:
        _flush = CacheFlush()
    return _flush


def _trained_problem(case: KernelCase, checkpoints: Path, dtype: torch.dtype, gen: torch.Generator) -> LinearProblem:
    masks = load_masks(checkpoints / case.model / "masks.npz")
    layers = masks.layers
    in_features = case.in_features or masks.meta["n_features"]

    def rows(mask: torch.Tensor) -> torch.Tensor:  # the first `batch` test examples, tiled if too few
        reps = -(-case.batch // len(mask))
        return mask.repeat(reps, 1)[: case.batch].to(case.device)

    p = make_problem(case.batch, in_features, case.out_features, case.block_size, in_density=None, out_density=None,
                     dtype=dtype, device=case.device, generator=gen)
    p.out_mask = rows(layers[-1])
    p.in_mask = rows(layers[-2]) if len(layers) > 1 else None
    return p


def build_problem(case: KernelCase, checkpoints: Path, seed: int) -> LinearProblem:
    gen = torch.Generator().manual_seed(seed)
    dtype = getattr(torch, case.dtype)
    if case.mask_source == "trained":
        return _trained_problem(case, checkpoints, dtype, gen)
    return make_problem(case.batch, case.in_features, case.out_features, case.block_size,
                        in_density=case.density if case.masks == "both" else None, out_density=case.density,
                        dtype=dtype, device=case.device, generator=gen, mask_kind=case.mask_source)


def case_memory_bytes(case: KernelCase, providers: int = 2) -> int:
    """Peak bytes a case allocates, an upper estimate: the problem in float64 as generated, its inputs in
    the case's dtype, one output per provider plus one, the kernel's gather scratch, and the float64
    check (x and the weight widened, the spec's and the dense product's references, a masked copy, and
    the error's temporaries)."""
    element = torch.empty((), dtype=getattr(torch, case.dtype)).element_size()
    b, n = case.batch, case.out_features
    k = case.in_features or n  # a trained model's first layer: its raw features, far fewer than n
    inputs = b * k + n * k + n
    return inputs * (8 + element) + (providers + 1) * b * n * element + b * k * element + (2 * b * k + n * k + 5 * b * n) * 8


def error_line(exc: Exception) -> str:
    """An exception as one line for a row: its type, message and where it was raised."""
    last = traceback.extract_tb(exc.__traceback__)[-1]
    return f"{type(exc).__name__}: {exc} ({Path(last.filename).name}:{last.lineno})"


def available_memory_bytes(device: str) -> int:
    if device == "cuda":
        return torch.cuda.mem_get_info()[0]
    return psutil.virtual_memory().available


# Memory kept free for the runner, the allocator's slack and whatever else the machine runs.
MEMORY_HEADROOM = 0.8


def run_kernel_case(case: KernelCase, *, checkpoints: Path, seed: int, rounds: int, bandwidth: float,
                    peak_flops: float | None = None, cuda_graph: bool = False, peers: tuple[str, ...] = (),
                    on_timed: Callable[[Callable, dict[str, list[float]]], None] | None = None) -> KernelRow:
    """The case's row: ours, the dense paths (bench.core.providers.DENSE_CANDIDATES) and each of `peers`,
    each checked, then timed interleaved; its metrics long format (bench.measure.metrics.case_metrics),
    speedups over the fastest correct dense path (the row's `baseline`), against this machine's roofline
    (`bandwidth`, `peak_flops`: bench.machine.peaks). `on_timed(build, samples)`, when given, runs after
    the timing (the profiler): build(provider) makes a provider's call with a fresh output.

    The row is built once, from its parts as far as the case got: the case, what its masks realized,
    the checks, the timing; a case stopped on the way is a failed or error row of the parts it reached."""
    parts = {**case.to_dict(), "cache": cache_state(case.device, case.cache, cuda_graph),
             "regime_used": pick_regime(case.regime, case.batch), "cuda_graph": cuda_graph}
    peers = tuple(dict.fromkeys((*(n for n in DENSE_CANDIDATES if n != "dense"), *peers)))
    needed, available = case_memory_bytes(case, 2 + len(peers)), available_memory_bytes(case.device)
    if needed > MEMORY_HEADROOM * available:
        # Refused before allocating anything: running out of memory would kill the whole run.
        return KernelRow(**parts, status="failed", error=f"not run: needs about {needed / 2**30:.1f} GiB of "
                         f"{case.device} memory, {available / 2**30:.1f} GiB is available")
    try:
        p = build_problem(case, checkpoints, seed)
        parts |= realized(p, parts["regime_used"])

        def build(name: str):
            # Poisoned: an element the provider does not write fails its check.
            out = torch.full((p.x.shape[0], p.weight.shape[0]), float("nan"), dtype=p.x.dtype, device=p.x.device)
            return PROVIDERS[name].build(p, case.backend, case.regime, out)

        # The weights stay fixed from the check through the timing, as in inference.
        with frozen_weights():
            checked, calls, failure = _checked_providers(p, build, peers, parts)
            parts |= checked
            if failure:
                return KernelRow(**parts, status="failed", error=failure)
            before = snapshot()
            flush = cache_flush() if parts["cache"] == "cold" and case.device == "cpu" else None
            per_sample: dict[str, int] = {}
            samples = time_interleaved(calls, case.device, rounds, cuda_graph, flush, per_sample)
            load = load_since(before)
        if on_timed is not None:
            on_timed(build, samples)
    except Exception as exc:  # OOM, an unsupported shape, a kernel bug: a failed row, the sweep goes on
        return KernelRow(**(parts | {"checks": []}), status="error", error=error_line(exc))
    dense_spread = iqr(samples["dense"]) / median(samples["dense"]) if case.device == "cpu" else None
    parts |= load.row_fields(torch.get_num_threads(), dense_spread)
    if case.device == "cuda":
        parts |= flag_if_shared(parts)
    parts |= _timed(samples, p, parts, case.device, bandwidth, peak_flops)
    # per_sample is empty where the samples are no rounds (do_bench's quantiles on CUDA): none are kept
    parts["samples"] = [RoundTimes(provider=name, batch=case.batch, seconds=times, calls=per_sample[name])
                        for name, times in samples.items() if name in per_sample]
    return KernelRow(**parts, status="ok")


def realized(p: LinearProblem, regime_used: str) -> dict:
    """What the case's masks realized: its input width, work and tile densities, and the ideal density
    of its regime (made exact by _checked_providers, once the kernel that runs is known)."""
    wd = work_density(p.in_mask, p.out_mask)
    td = weight_tile_density(p.in_mask, p.out_mask, -(-p.x.shape[1] // p.block_size), p.weight.shape[0] // p.block_size)
    return {"in_features": p.x.shape[1], "work_density": wd, "tile_density": td,
            "ideal_density": ideal_density(regime_used, "", wd, td)}


def _checked_providers(p: LinearProblem, build: Callable, peers: tuple[str, ...],
                       parts: dict) -> tuple[dict, dict[str, Callable], str]:
    """(the row's check fields, the calls to time by provider name, why the case fails or ""): ours and
    the dense baseline checked first (either wrong fails the case), then each peer (one wrong or unable
    to run is a note in its check, and is not timed)."""
    dense, sparse = build("dense"), build("ours")
    # Each reference once per case, however many providers are checked against it.
    spec = p.reference()
    with kernels_used() as ran:
        computed = sparse()
    kernel = spelled(ran)
    fields = {"kernel": kernel,
              "ideal_density": ideal_density(parts["regime_used"], kernel, parts["work_density"], parts["tile_density"])}
    fields["max_relative_error"], error = check_output(p, computed, want=spec)
    if error:
        return fields, {}, f"wrong result: {error}"
    wants = {False: spec, True: p.dense_reference()}  # keyed by Provider.dense
    dense_error, error = check_output(p, dense(), want=wants[True])
    if error:
        return fields, {}, f"the dense baseline computed a wrong result: {error}"
    fields["checks"] = [ProviderCheck(provider="dense", role="baseline", status="ok", max_relative_error=dense_error),
                        ProviderCheck(provider="ours", role="ours", status="ok",
                                      max_relative_error=fields["max_relative_error"], kernel=kernel)]
    calls = {"dense": dense, "ours": sparse}  # keyed by provider name
    for name in peers:
        check, call = _checked_peer(name, p, build, wants)
        fields["checks"].append(check)
        if call is not None:
            calls[name] = call
    return fields, calls, ""


def _timed(samples: dict[str, list[float]], p: LinearProblem, parts: dict, device: str, bandwidth: float,
           peak_flops: float | None) -> dict:
    """The row's timing fields: rounds, the baseline of record, the metrics, roofline flags, ours' rank."""
    work = CaseWork(p.x.shape[0], p.x.shape[1], p.weight.shape[0], p.x.element_size(), parts["work_density"],
                    parts["ideal_density"], weight_share(parts["regime_used"], parts["kernel"], parts["tile_density"]))
    baseline = fastest_dense({name: median(times) for name, times in samples.items()})
    metrics = case_metrics(samples, work, device, bandwidth, peak_flops, baseline=baseline)
    fields = {"rounds": len(samples["ours"]), "baseline": baseline, "metrics": metrics}
    if above := above_roofline(metrics):
        # Faster than the machine allows: the case's model (its bytes, its roof) is wrong for this row.
        fields["load_flags"] = ",".join(f for f in (parts.get("load_flags", ""), "above_roofline") if f)
        fields["above_roofline"] = above
    times = {m.provider: m.median for m in metrics if m.metric == "time"}
    # 1 + the providers (baseline and peers) whose median beat ours: where ours ranks among all it was timed with
    fields["ours_rank"] = 1 + sum(t < times["ours"] for name, t in times.items() if name != "ours")
    fields["providers_timed"] = len(times)
    return fields


# A fraction of the roofline past this is not noise but a wrong model of the case.
ROOFLINE_TOLERANCE = 1.05


def above_roofline(metrics) -> str:
    """The providers whose fraction of the roofline exceeds ROOFLINE_TOLERANCE, comma-separated ("" if none)."""
    return ",".join(m.provider for m in metrics if m.metric == "fraction_of_roofline" and m.median > ROOFLINE_TOLERANCE)


def _checked_peer(name: str, p: LinearProblem, build, wants: dict) -> tuple[ProviderCheck, object]:
    """A peer's check and its call, checked against the reference; no call when it cannot run or
    computes a wrong result (the case goes on without it)."""
    provider = PROVIDERS[name]
    check = ProviderCheck(provider=name, role=provider.role, status="ok")
    if reason := provider.unsupported(p):
        check.status, check.error = "skipped", reason
        return check, None
    try:
        call = build(name)
        with kernels_used() as ran:
            computed = call()
        check.kernel = spelled(ran)
        check.max_relative_error, error = check_output(p, computed, want=wants[provider.dense])
    except Exception as exc:  # a peer that cannot run this case is a note in its row, not a failed case
        check.status, check.error = "error", f"{type(exc).__name__}: {exc}"
        return check, None
    if error:
        check.status, check.error = "failed", f"wrong result: {error}"
        return check, None
    return check, call
