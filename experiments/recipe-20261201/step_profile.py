"""One training step of the default suite's models on one thread, batch 64 and 128: time per step and
torch.profiler's top operators. python experiments/recipe-20261201/step_profile.py > step_profile.txt"""
import time

import torch
from torch.profiler import profile

from condcore.data import load_dataset
from condcore.models import CondNet, CondNetConfig
from condcore.policies.reinforce import Baseline
from condcore.train import TrainConfig, _optimizer, step_loss

torch.set_num_threads(1)
data = load_dataset("digits", seed=0)
for policy, tau in (("dense", 1.0), ("reinforce", 0.25), ("reinforce", 0.1)):
    for batch in (64, 128):
        cfg = TrainConfig(batch_size=batch)
        torch.manual_seed(0)
        model = CondNet(CondNetConfig(64, 10, hidden=[2048, 2048], block_size=128, policy=policy, tau=tau))
        optimizer, baseline = _optimizer(model, cfg), Baseline(cfg.baseline)
        x, y = data.train.x[:batch], data.train.y[:batch]

        def step():
            loss, _ = step_loss(model, x, y, cfg, baseline)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(10):
            step()
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(10):
                step()
            times.append((time.perf_counter() - start) / 10)
        print(f"\n{policy} tau={tau} batch {batch}: {1e3 * sorted(times)[2]:.1f} ms per step "
              f"(median of 5 x 10 steps; {1e3 * min(times):.1f}-{1e3 * max(times):.1f})")
        if batch == 64:
            with profile() as prof:
                for _ in range(10):
                    step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8, max_name_column_width=40))
