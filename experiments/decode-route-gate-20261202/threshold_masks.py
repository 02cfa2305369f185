"""Do the threshold gates' masks change? Every threshold-mode checkpoint under results/checkpoints, on its
own seed's test split: the logit comparison (the gate now) against p > 0.5 (the gate before).

    python experiments/decode-route-gate-20261202/threshold_masks.py
"""
from pathlib import Path

import torch

from condcore.data import load_dataset
from condcore.policies.base import inference_mask
from condcore.train import load_checkpoint

data, models, changed, decisions, closest = {}, 0, 0, 0, float("inf")
for checkpoint in sorted(Path("results/checkpoints").glob("digits-*/model.pt")):
    model, metrics = load_checkpoint(checkpoint)
    if metrics["policy"] not in ("reinforce", "straight-through") or metrics["inference_mode"] != "threshold":
        continue
    seed = metrics.get("seed", 0)
    if seed not in data:
        data[seed] = load_dataset("digits", None, seed=seed)
    x = data[seed].test.x
    model.eval()
    with torch.no_grad():
        h = x
        for layer, linear in enumerate(model.hidden):
            logits, gate = model.policies[layer](h), model.gates[layer]
            new = gate(logits, len(x), model.n_blocks[layer], "threshold").mask
            p = gate.probabilities(logits) if hasattr(gate, "probabilities") else torch.sigmoid(logits)
            old = inference_mask(p, "threshold", gate.tau)
            changed += int((new != old).sum())
            decisions += new.numel()
            closest = min(closest, float((logits - getattr(gate, "threshold_logit", 0.0)).abs().min()))
            h = torch.relu(linear(h)) * new.repeat_interleave(model.config.block_size, dim=1)
    models += 1
print(f"{models} checkpoints, {decisions} block decisions, {changed} changed; "
      f"the closest logit lay {closest:.3g} from the threshold")
