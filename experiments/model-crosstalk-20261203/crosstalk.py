"""Does timing runtimes interleaved on 2 cores slow the candidate after each? A dense 64-2048-2048-10
net and a 64-64-64-10 one (random weights), batch 256, under the four model providers: each timed alone,
then all interleaved as condcore.timing did (same calls per sample, back to back), then interleaved
as bench/model_timing.py now does: ~5 ms samples, 20 ms idle after each (0.5 s after ONNX Runtime's),
each round in a fresh seeded order.
Medians of 9 rounds, ms per call. Run: python experiments/model-crosstalk-20261203/crosstalk.py"""

import torch

from bench.core.model_providers import MODEL_PROVIDERS
from condcore.models import CondNet, CondNetConfig
from condcore.ops import frozen_weights
from condcore.timing import median, time_cpu_interleaved

torch.set_num_threads(2)
torch.manual_seed(0)
nets = {w: CondNet(CondNetConfig(64, 10, hidden=[w, w], block_size=64, policy="dense", tau=1.0)).eval()
        for w in (2048, 64)}
x = torch.randn(256, 64)
fns = {}
with frozen_weights(), torch.no_grad():
    for w, net in nets.items():
        for p in MODEL_PROVIDERS:
            prepare, run = MODEL_PROVIDERS[p].build(net, "threshold", 2)
            xi = prepare(x)
            run(xi)
            fns[f"w{w} {p}"] = lambda run=run, xi=xi: run(xi)
    alone = {k: median(time_cpu_interleaved({k: f}, 9)[k]) for k, f in fns.items()}
    back_to_back = {k: median(v) for k, v in time_cpu_interleaved(fns, 9).items()}
    settle = {k: max(0.02, MODEL_PROVIDERS[k.split()[1]].settle_s) for k in fns}
    settled = {k: median(v) for k, v in
               time_cpu_interleaved(fns, 9, settle_after=settle, sample_s=5e-3, shuffle_seed=0).items()}
print(f"{'candidate (in round order)':<22} {'alone':>9} {'back to back':>13} {'settled':>9}")
for k in fns:
    print(f"{k:<22} {1e3 * alone[k]:9.3f} {1e3 * back_to_back[k]:13.3f} {1e3 * settled[k]:9.3f}")
