import torch, time, statistics, sys
from condcore.ops import block_sparse_linear, frozen_weights
from condcore.ops.problems import make_problem
from condcore.masks import work_density
torch.set_num_threads(2)
out = []
for d in (0.5, 0.25, 0.1):
    p = make_problem(1024, 2048, 2048, 128, in_density=None, out_density=d, generator=torch.Generator().manual_seed(0))
    o1 = torch.empty(1024, 2048); o2 = torch.empty(1024, 2048)
    dense = lambda: torch.addmm(p.bias, p.x, p.weight.t(), out=o1)
    sparse = lambda: block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), out=o2)
    wd = work_density(p.in_mask, p.out_mask)
    with frozen_weights():
        for _ in range(3): dense(); sparse()
        r = []
        for _ in range(15):
            t = time.perf_counter(); dense(); a = time.perf_counter() - t
            t = time.perf_counter(); sparse(); b = time.perf_counter() - t
            r.append(a / b)
    out.append(statistics.median(r) * wd)
print(sys.argv[1], " ".join(f"{v:.2f}" for v in out))
