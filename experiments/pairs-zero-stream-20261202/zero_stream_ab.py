"""A/B, one process, interleaved: the pair kernel of a base checkout against this checkout's, on the
large-batch output-mask goal cases (B = 1024, 2048 x 2048, fp32, 2 threads). Each round times the dense
F.linear once and then each build; a build's "fraction of ideal" in a round is dense time / its time x
the mask's density, the goal metric of bench/goals.py.

    python experiments/pairs-zero-stream-20261202/zero_stream_ab.py BASE_CHECKOUT [rounds]
"""

import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from condcore.ops import condnet_native, cpu_native


def load_build(checkout: str):
    """The built kernels module of another checkout (built there first if needed), loaded beside ours."""
    code = "from condcore.ops import cpu_native; cpu_native._load(); print(cpu_native.build_directory())"
    folder = Path(subprocess.run([sys.executable, "-c", code], cwd=checkout, check=True, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1])
    spec = importlib.util.spec_from_file_location(folder.name, folder / f"{folder.name}.so")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    builds = {"base": load_build(sys.argv[1]), "head": cpu_native._load()}
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    torch.manual_seed(0)
    batch, features = 1024, 2048
    x, weight, bias = torch.randn(batch, features), torch.randn(features, features) / 45, torch.randn(features)
    for k in (128, 64):
        packed = condnet_native.pack_weight(weight, k, k)
        for density in (0.1, 0.25, 0.5):
            mask = torch.rand(batch, features // k) < density
            realized = mask.float().mean().item()
            y = {name: torch.empty(batch, features) for name in builds}
            fractions = {name: [] for name in builds}
            dense = []
            for _ in range(rounds):
                start = time.perf_counter()
                want = F.linear(x, weight, bias)
                dense_s = time.perf_counter() - start
                dense.append(dense_s)
                for name, module in builds.items():
                    start = time.perf_counter()
                    module.pairs_forward(x, packed, bias, None, mask, y[name], torch.get_num_threads())
                    fractions[name].append(dense_s / (time.perf_counter() - start) * realized)
            for name in builds:
                torch.testing.assert_close(y[name], want * mask.repeat_interleave(k, 1), rtol=1e-4, atol=1e-4)
            def cell(v):
                q = statistics.quantiles(v, n=4)
                return f"{statistics.median(v):.3f} [IQR {q[0]:.3f}-{q[2]:.3f}]"
            print(f"k={k} d={density} (realized {realized:.3f}) dense {statistics.median(dense) * 1e3:.1f} ms  "
                  + "  ".join(f"{name} {cell(v)}" for name, v in fractions.items()), flush=True)


if __name__ == "__main__":
    main()
