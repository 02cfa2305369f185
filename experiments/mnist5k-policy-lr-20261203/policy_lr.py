"""The policies' learning-rate multiplier on mnist5k: validation error and realized density per layer
after the default suite's recipe (2048x2048, k = 128, 10 epochs, batch 128, lr 0.002, seed 0), at the
default multiplier 30 (tuned on digits) and at 10 and 3. Run: python experiments/mnist5k-policy-lr-20261203/policy_lr.py"""
import torch

from condcore.data import load_dataset
from condcore.models import CondNet, CondNetConfig
from condcore.train import TrainConfig, evaluate, train

torch.set_num_threads(2)
data = load_dataset("mnist5k")
for policy, tau in [("reinforce", 0.25), ("reinforce", 0.1), ("straight-through", 0.25), ("straight-through", 0.1),
                    ("topk", 0.5), ("topk", 0.25), ("topk", 0.1)]:
    for mult in (30.0, 10.0, 3.0):
        torch.manual_seed(0)
        model = CondNet(CondNetConfig(784, 10, hidden=[2048, 2048], block_size=128, policy=policy, tau=tau))
        mode = "topk" if policy == "topk" else "threshold"
        result = train(model, data, TrainConfig(epochs=10, batch_size=128, lr=0.002, policy_lr_mult=mult, valid_every=5,
                                                inference_mode=mode), progress=False)
        ev = evaluate(result.model, data.valid, mode)
        print(f"{policy:17s} tau {tau:<5} x{mult:<5g} valid error {100 * (1 - ev.accuracy):5.1f}%  density per layer "
              f"{[round(d, 3) for d in ev.density]}  {result.seconds:.0f} s in {result.precision}", flush=True)
