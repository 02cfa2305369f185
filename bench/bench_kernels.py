"""Kernel benchmark: dense GEMM vs a naive per-block gather loop vs condbench's kernels, in one run.

    python -m bench.bench_kernels                 # CPU goals: B=1024 K=N=2048 k=128, fp32
    python -m bench.bench_kernels --device cuda   # H100 goals: bf16 large batch + decode

Speedup is dense time / provider time. Fraction of ideal is speedup x the realized density of the
work (ideal = 1 / density): for the large-batch rows that density is the fraction of multiply-adds a
perfect per-example kernel needs; for decode rows it is the fraction of weight tiles the batch needs.
On CPU the providers are timed interleaved, round by round, so drift hits all of them alike; on GPU
with triton.testing.do_bench (L2 flushed between repeats). Every case is checked against the float64
reference before it is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch

from bench.metrics import needed_bytes, weight_share
from bench.providers import PROVIDERS
from condcore.masks import weight_tile_density, work_density
from condcore.ops import cpu_native
from condcore.ops.packed_weights import frozen_weights, onednn_takes
from condcore.problems import LinearProblem, check_output, make_problem
from condcore.timing import copy_bandwidth, median, time_interleaved


@dataclass(frozen=True)
class LayerCase:
    regime: str  # "grouped" (large batch) or "union" (decode)
    batch: int
    in_features: int
    out_features: int
    block_size: int
    density: float
    masks: str  # "out" (output side only) or "both"
    mask_kind: str = "iid"  # "iid" or "clustered"


@dataclass
class CaseResult:
    case: LayerCase
    realized_density: float
    ok: bool
    error: str = ""
    median_s: dict[str, float] = field(default_factory=dict)

    def speedup(self, provider: str) -> float:
        return self.median_s["dense"] / self.median_s[provider]

    def best_dense_s(self) -> float:
        return min(t for name, t in self.median_s.items() if name.startswith("dense"))

    def fraction_of_ideal(self, provider: str) -> float:
        return self.speedup(provider) * self.realized_density

    def needed_bytes(self, element_size: int) -> float:
        c = self.case  # a union row's realized density is its tile density
        return needed_bytes(c.batch, c.in_features, c.out_features, element_size,
                            weight_share(c.regime, self.realized_density))


def providers(p: LinearProblem, regime: str) -> dict[str, Callable[[], torch.Tensor]]:
    """Zero-argument closures writing into outputs allocated here, so allocation (on CPU: page faults of
    a fresh multi-MB tensor, which no kernel can avoid) stays out of the timed region for all of them.
    The registry's baseline, gather loop, ours and best dense path, plus dense variants of this bench."""
    outs = {name: torch.empty(p.x.shape[0], p.weight.shape[0], dtype=p.x.dtype, device=p.x.device)
            for name in ("dense", "dense_wxt", "naive", "ours")}
    fns = {name: PROVIDERS[registered].build(p, "auto", regime, outs[name])
           for name, registered in (("dense", "dense"), ("naive", "naive_gather"), ("ours", "ours"))}
    if p.x.device.type == "cpu":
        # Other dense paths torch offers on CPU, so a sparse win is not just a better GEMM orientation
        # or library: W @ x.T (faster for few rows under MKL) and oneDNN's inner product, unpacked and
        # packed (ours packs too: "ours x best" never credits the packing to sparsity).
        fns["dense_wxt"] = lambda: outs["dense_wxt"].copy_(torch.addmm(p.bias.unsqueeze(1), p.weight, p.x.t()).t())
        if onednn_takes(p.x.dtype):
            fns["dense_onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(p.x, p.weight, p.bias, "none", [], "")
            fns["dense_onednn_packed"] = PROVIDERS["dense_onednn"].build(p, "auto", regime, outs["dense"])
    return fns


def run_case(case: LayerCase, *, dtype: torch.dtype, device: str, rounds: int, seed: int) -> CaseResult:
    gen = torch.Generator().manual_seed(seed)
    p = make_problem(
        case.batch, case.in_features, case.out_features, case.block_size,
        in_density=case.density if case.masks == "both" else None, out_density=case.density,
        dtype=dtype, device=device, generator=gen, mask_kind=case.mask_kind,
    )
    if case.regime == "union":
        density = weight_tile_density(p.in_mask, p.out_mask, case.in_features // case.block_size, case.out_features // case.block_size)
    else:
        density = work_density(p.in_mask, p.out_mask)
    fns = providers(p, case.regime)
    try:
        with frozen_weights():  # fixed from the check through the timing, as in inference
            _, error = check_output(p, fns["ours"]())
            if error:
                return CaseResult(case, density, ok=False, error=error)
            medians = {name: median(t) for name, t in time_interleaved(fns, device, rounds).items()}
    except Exception as exc:  # a failed case is a failed row, not a failed run
        return CaseResult(case, density, ok=False, error=f"{type(exc).__name__}: {exc}")
    return CaseResult(case, density, ok=True, median_s=medians)


def default_cases(device: str) -> list[LayerCase]:
    if device == "cuda":
        big = [LayerCase("grouped", 8192, 4096, 4096, 128, d, "out") for d in (0.5, 0.25, 0.1)]
        decode = [LayerCase("union", 16, 4096, 14336, 128, d, "both") for d in (0.5, 0.25, 0.1)]
        return big + decode + [LayerCase("union", 1, 4096, 14336, 128, 0.25, "both"),
                               LayerCase("union", 16, 4096, 14336, 128, 0.25, "both", "clustered")]
    big = [LayerCase("grouped", 1024, 2048, 2048, 128, d, "out") for d in (0.5, 0.25, 0.1)]
    decode = [LayerCase("union", b, 2048, 2048, 128, 0.25, "both") for b in (1, 16)]
    return big + decode + [LayerCase("union", 16, 2048, 2048, 128, 0.25, "both", "clustered")]


def render(results: list[CaseResult], title: str, element_size: int, bandwidth: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in ("regime", "B", "K", "N", "k", "masks", "kind", "density", "dense ms", "best dense ms", "naive ms",
                "ours ms", "naive x", "ours x", "ours x best", "naive/ideal", "ours/ideal", "ours GB/s", "/roofline"):
        table.add_column(col, justify="right")
    for r in results:
        c = r.case
        head = [c.regime, str(c.batch), str(c.in_features), str(c.out_features), str(c.block_size), c.masks, c.mask_kind,
                f"{r.realized_density:.3f}"]
        if not r.ok:
            table.add_row(*head, f"[red]FAILED: {r.error}[/red]", *[""] * 10)
            continue
        ms = [f"{t * 1e3:.3f}" for t in (r.median_s["dense"], r.best_dense_s(), r.median_s["naive"], r.median_s["ours"])]
        speed = [f"{r.speedup(p):.2f}" for p in ("naive", "ours")] + [f"{r.best_dense_s() / r.median_s['ours']:.2f}"]
        frac = [f"{r.fraction_of_ideal(p):.2f}" for p in ("naive", "ours")]
        gbs = r.needed_bytes(element_size) / r.median_s["ours"]
        table.add_row(*head, *ms, *speed, *frac, f"{gbs / 1e9:.1f}", f"{gbs / bandwidth:.2f}")
    # A pipe or CI log has no width of its own; do not let rich squeeze the numbers into ellipses.
    Console(width=None if sys.stdout.isatty() else 230).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_kernels", description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None,
                        help="default: float32 on CPU, bfloat16 on CUDA")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (fixed, so runs compare)")
    parser.add_argument("--rounds", type=int, default=15, help="CPU timing rounds (median taken)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="tiny shapes: a smoke test, not a measurement")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda asked for, but CUDA is not available on this machine", file=sys.stderr)
        return 2
    dtype = getattr(torch, args.dtype or ("bfloat16" if args.device == "cuda" else "float32"))
    torch.set_num_threads(args.threads)
    cases = default_cases(args.device)
    if args.small:
        cases = [LayerCase(c.regime, min(c.batch, 64), 256, 256, 32, c.density, c.masks, c.mask_kind) for c in cases]
    results = [run_case(c, dtype=dtype, device=args.device, rounds=args.rounds, seed=args.seed) for c in cases]
    bandwidth = copy_bandwidth(args.device)
    env = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "dtype": str(dtype),
           "threads": torch.get_num_threads(), "torch": torch.__version__, "copy_bandwidth_Bps": bandwidth,
           "cpu_grouped_kernel": cpu_native.status(build=args.device == "cpu")}
    element_size = torch.empty((), dtype=dtype).element_size()
    render(results, f"block-sparse linear, {env['device']}, {dtype}, {env['threads']} threads, "
           f"measured copy bandwidth {bandwidth / 1e9:.1f} GB/s (the roofline), "
           f"CPU grouped kernel: {env['cpu_grouped_kernel']}", element_size, bandwidth)
    if args.json:
        rows = [{**asdict(r.case), "realized_density": r.realized_density, "ok": r.ok, "error": r.error,
                 **{f"{p}_median_s": s for p, s in r.median_s.items()}} for r in results]
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": rows}, f, indent=2)
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
