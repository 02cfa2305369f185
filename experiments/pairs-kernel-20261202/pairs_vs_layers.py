"""The pair kernel against the paths it stands in front of (the C++ grouped kernel at batch > 16, the
union kernel at <= 16), both through block_sparse_linear inside frozen_weights(), interleaved in one
process: per round, n calls of each; the ratio of their times per round, median [IQR] over 15 rounds."""
import statistics, time
import torch
from condcore.ops import block_sparse_linear, condnet_native, frozen_weights
from condcore.ops.reference import reference_linear

torch.set_num_threads(2)
torch.manual_seed(0)
K = N = 2048
k = 128
W = torch.randn(N, K) / 45
b = torch.randn(N)
pairs_linear = condnet_native.pairs_linear
with torch.no_grad(), frozen_weights():
    for B, masks in [(1, "both"), (16, "both"), (256, "both"), (1024, "both"), (256, "out"), (1024, "out")]:
        for d in (0.5, 0.25, 0.1):
            x = torch.randn(B, K)
            om = torch.rand(B, N // k) < d
            im = (torch.rand(B, K // k) < d) if masks == "both" else None
            call = lambda: block_sparse_linear(x, W, b, in_mask=im, out_mask=om, block_size=k)
            ref = reference_linear(x.double(), W.double(), b.double(), im, om, k)
            err = (call().double() - ref).abs().max().item()
            n = 100 if B <= 16 else 4
            ratios, before, after = [], [], []
            for _ in range(15):
                condnet_native.pairs_linear = lambda *a: None
                t0 = time.perf_counter()
                for _ in range(n):
                    call()
                condnet_native.pairs_linear = pairs_linear
                t1 = time.perf_counter()
                for _ in range(n):
                    call()
                t2 = time.perf_counter()
                ratios.append((t1 - t0) / (t2 - t1))
                before.append((t1 - t0) / n)
                after.append((t2 - t1) / n)
            q = statistics.quantiles(ratios, n=4)
            print(f"B={B:5d} {masks:4s} d={d}: before {statistics.median(before) * 1e3:8.3f} ms  pairs "
                  f"{statistics.median(after) * 1e3:8.3f} ms  before/pairs {statistics.median(ratios):5.2f}x "
                  f"[{q[0]:.2f}, {q[2]:.2f}]  max err vs fp64 spec {err:.1e}")
