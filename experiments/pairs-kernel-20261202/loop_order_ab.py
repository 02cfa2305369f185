import importlib.util, sys, time, statistics, torch
from condcore.ops.condnet_native import pack_weight
torch.set_num_threads(2)
def load(h):
    name = f"condbench_grouped_cpu_{h}"
    spec = importlib.util.spec_from_file_location(name, f"/root/.cache/torch_extensions/{name}/{name}.so")
    m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); return m
A, B_ = load(sys.argv[1]), load(sys.argv[2])
torch.manual_seed(0)
K = N = 2048
for k in (128, 64):
    W = torch.randn(N, K) / 45; b = torch.randn(N)
    P = pack_weight(W, k, k)
    for B, masks in [(1024, "out"), (1024, "both"), (256, "both"), (16, "both"), (1, "both")]:
        if k == 64 and masks == "both": continue
        for d in (0.5, 0.25, 0.1):
            x = torch.randn(B, K); om = torch.rand(B, N // k) < d
            im = (torch.rand(B, K // k) < d) if masks == "both" else None
            y = torch.empty(B, N)
            fa = lambda: A.pairs_forward(x, P, b, im, om, y, 2)
            fb = lambda: B_.pairs_forward(x, P, b, im, om, y, 2)
            n = 200 if B <= 16 else 6
            ratios = []
            for _ in range(15):
                t0 = time.perf_counter(); [fa() for _ in range(n)]; t1 = time.perf_counter(); [fb() for _ in range(n)]; t2 = time.perf_counter()
                ratios.append((t1 - t0) / (t2 - t1))
            ratios.sort()
            print(f"k={k} B={B} {masks} d={d}: old/new {statistics.median(ratios):.3f} [{ratios[3]:.3f}, {ratios[11]:.3f}]  new {((t2-t1)/n)*1e3:.3f} ms")
