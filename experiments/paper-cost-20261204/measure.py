"""What training suites/paper.yaml costs: each distinct model of the suite (its architecture and
recipe) trained four times for 40 minibatches of 128 on random inputs of its dataset's shape, on one
thread (a suite's training jobs run one thread each); the median time per minibatch of the last three
tries, scaled to the suite's epochs, seeds and each dataset's training-set size.
Usage: python experiments/paper-cost-20261204/measure.py > OUT.json"""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

import torch

from bench.plan.cases import model_sections
from bench.plan.suite import load_suite
from condcore.data import Dataset, Split
from condcore.models import CondNet
from condcore.policies import POLICIES
from condcore.train import TrainConfig, train

SUITE = Path(__file__).resolve().parents[2] / "suites" / "paper.yaml"
# the training splits' sizes after condcore.data's hold-outs (CIFAR-10 50,000 - 5,000; SVHN 73,257 -
# 6,000; MNIST 60,000 - 10,000)
TRAIN_SIZE = {"cifar10": 45_000, "svhn": 67_257, "mnist": 50_000}
FEATURES = {"cifar10": 3072, "svhn": 3072, "mnist": 784}
STEPS = 40
REPEATS = 4  # the median of the last three is quoted


def random_split(n: int, features: int, gen: torch.Generator) -> Split:
    return Split(torch.rand(n, features, generator=gen), torch.randint(0, 10, (n,), generator=gen))


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    suite = load_suite(SUITE)
    rows, seen = [], {}
    for section, cases in model_sections(suite):
        count = Counter((c.policy, c.hidden) for c in cases)
        for case in cases:
            key = (case.dataset, case.policy, case.hidden, case.recipe)
            if key in seen:
                continue
            seen[key] = True
            features = FEATURES[case.dataset]
            data = Dataset(case.dataset, random_split(STEPS * case.batch_size, features, gen),
                           random_split(50, features, gen), random_split(50, features, gen), 10)
            cfg = TrainConfig(epochs=1, batch_size=case.batch_size, lr=case.lr, seed=0,
                              inference_mode=POLICIES[case.policy].inference_mode, precision=case.precision,
                              **case.recipe.train_options())
            times = []
            for _ in range(REPEATS):  # the first pays for loading kernels and warming caches
                torch.manual_seed(0)
                model = CondNet(case.model_config(features, 10))
                start = time.perf_counter()
                train(model, data, cfg, progress=False)
                times.append((time.perf_counter() - start) / STEPS)
            per_step = statistics.median(times[1:])
            steps = -(-TRAIN_SIZE[case.dataset] // case.batch_size) * case.epochs
            rows.append({"dataset": case.dataset, "policy": case.policy, "hidden": list(case.hidden),
                         "seconds_per_step": per_step, "seconds_per_step_each_try": times, "epochs": case.epochs,
                         "models": count[(case.policy, case.hidden)],
                         "hours_per_model": per_step * steps / 3600})
    total = sum(r["hours_per_model"] * r["models"] for r in rows)
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model_name = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
                      platform.machine())
    print(json.dumps({"machine": model_name, "threads_per_job": 1,
                      "torch": torch.__version__, "rows": rows, "core_hours_training": total}, indent=1))


if __name__ == "__main__":
    main()
