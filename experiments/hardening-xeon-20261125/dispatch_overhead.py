import torch, time, statistics, sys
from condcore.ops import block_sparse_linear, frozen_weights
from condcore.ops.problems import make_problem
torch.set_num_threads(2)
import os
if os.environ.get("NOCHECK"):
    import condcore.ops.cpu as cpu; cpu.recompute_leaked_rows = lambda y, *a: y
res = []
for B in (1, 16):
    p = make_problem(B, 2048, 4096, 128, in_density=0.25, out_density=0.25, generator=torch.Generator().manual_seed(0))
    out = torch.empty(B, 4096)
    f = lambda: block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), out=out)
    with frozen_weights():
        for _ in range(50): f()
        s = []
        for r in range(15):
            t = time.perf_counter()
            for _ in range(100): f()
            s.append((time.perf_counter() - t) / 100)
    res.append(statistics.median(s) * 1e6)
print(sys.argv[1], " ".join(f"{v:.1f}" for v in res))
