"""The union (decode) kernel before (573160c) and after its batch-1 rectangles, interleaved in one process.

    git show 573160c:condcore/ops/cpu.py > /tmp/basecpu/cpu_base.py
    python experiments/decode-route-gate-20261202/union_in_process.py
"""
import sys

import torch

sys.path.insert(0, "/tmp/basecpu")
import cpu_base  # noqa: E402

from condcore.ops import cpu as cpu_head  # noqa: E402
from condcore.problems import make_problem  # noqa: E402
from condcore.timing import median, ratio_samples, speedup_interval, time_interleaved  # noqa: E402

torch.set_num_threads(2)
for batch, density in ((1, 0.1), (1, 0.25), (1, 0.5), (16, 0.25)):
    p = make_problem(batch, 2048, 4096, 128, in_density=density, out_density=density, dtype=torch.float32, device="cpu",
                     generator=torch.Generator().manual_seed(0))
    out = torch.empty(batch, 4096)
    args = (p.x, p.weight, p.bias, p.in_mask, p.out_mask, 128, out)
    samples = time_interleaved({"base": lambda: cpu_base.union_linear(*args),
                                "head": lambda: cpu_head.union_linear(*args)}, "cpu", 60)
    ratio = median(ratio_samples(samples["base"], samples["head"]))
    low, high = speedup_interval(samples["base"], samples["head"], "cpu")
    print(f"B={batch} d={density}: base {median(samples['base']) * 1e6:.1f} us, head {median(samples['head']) * 1e6:.1f} us, "
          f"base/head {ratio:.3f} [{low:.3f}, {high:.3f}]")
