import sys, json, torch
from pathlib import Path
from condcore.train import load_checkpoint
from condcore.data import load_dataset
from condcore.speed import inference_speedup
from bench.measure.model import test_batches
torch.set_num_threads(2)
root = Path("/work/main/results/checkpoints")
data = load_dataset("digits", None, seed=0)
out = {}
for tau in ("0.5", "0.25", "0.1"):
    model, metrics = load_checkpoint(root / f"digits-reinforce-tau{tau}-h2048x2048-k128-e20-b128-lr0.002-auto-s0/model.pt")
    for b in (1, 256):
        torch.manual_seed(0)
        s = inference_speedup(model, test_batches(data.test.x, b), "threshold", rounds=12)
        out[f"tau{tau}-B{b}"] = [s.speedup, s.sparse_s, s.dense_s]
print(json.dumps(out))
