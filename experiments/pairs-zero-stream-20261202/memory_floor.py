"""What the large-batch, low-density case spends on memory that the dense GEMM amortizes: the pair
kernel at B = 1024, 2048 x 2048, k = 128, out masks d = 0.1, beside the same call with every block off
(it only writes y's zeros), a read of x and a read of the weight, and the dense F.linear; medians of 9
interleaved rounds, on $T threads (default 1).

    T=2 python experiments/pairs-zero-stream-20261202/memory_floor.py
"""

import os
import statistics
import time

import torch
import torch.nn.functional as F

from condcore.ops import condnet_native
from condcore.ops.packed_weights import frozen_weights


def main() -> None:
    torch.set_num_threads(int(os.environ.get("T", "1")))
    torch.manual_seed(0)
    batch, features, k = 1024, 2048, 128
    x, weight, bias = torch.randn(batch, features), torch.randn(features, features) / 45, torch.randn(features)
    out = torch.empty(batch, features)
    mask = torch.rand(batch, features // k) < 0.1
    off = torch.zeros_like(mask)
    with frozen_weights():
        condnet_native.pairs_linear(x, weight, bias, None, mask, k, out)
        calls = {"dense F.linear": lambda: F.linear(x, weight, bias),
                 "pairs d=0.1": lambda: condnet_native.pairs_linear(x, weight, bias, None, mask, k, out),
                 "pairs all off (y's zeros only)": lambda: condnet_native.pairs_linear(x, weight, bias, None, off, k, out),
                 "read x (8 MB)": lambda: x.sum(), "read the weight (16 MB)": lambda: weight.sum()}
        times = {name: [] for name in calls}
        for _ in range(9):
            for name, fn in calls.items():
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    density = mask.float().mean().item()
    med = {name: statistics.median(v) * 1e3 for name, v in times.items()}
    print(f"threads {torch.get_num_threads()}, realized density {density:.4f}")
    for name, ms in med.items():
        print(f"  {name:32s} {ms:8.3f} ms")
    ideal = med["dense F.linear"] * density
    print(f"  dense x density (the ideal)      {ideal:8.3f} ms; fraction of ideal {ideal / med['pairs d=0.1']:.3f}")


if __name__ == "__main__":
    main()
