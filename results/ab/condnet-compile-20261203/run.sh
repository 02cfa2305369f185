#!/usr/bin/env bash
# A CondNet under torch.compile (provider ours_compiled) beside the four default providers: what the
# compile costs in wall time and what it buys at run time. The same models twice (the second run reuses
# the checkpoints): the four default providers, then with ours_compiled added.
set -euo pipefail
cd "$(dirname "$0")"
common=(--policies dense,reinforce,topk --taus 0.25 --dense-widths 64 --epochs 20 --batch-size 128 --lr 0.002
        --batches 1,256 --rounds 12 --threads 2 --out .)
python -m bench models "${common[@]}" --providers ours,torch,onnxruntime,torch_compile > /dev/null
mkdir -p default compiled
start=$(date +%s.%N)
python -m bench models "${common[@]}" --providers ours,torch,onnxruntime,torch_compile > default/models.md
mid=$(date +%s.%N)
python -m bench models "${common[@]}" --providers ours,torch,onnxruntime,torch_compile,ours_compiled > compiled/models.md
end=$(date +%s.%N)
cp models.csv model_speeds.csv model_times.csv compiled/
python - "$start" "$mid" "$end" <<'PY' > wall_seconds.json
import json, sys
start, mid, end = map(float, sys.argv[1:])
print(json.dumps({"default_providers_s": round(mid - start, 1), "with_ours_compiled_s": round(end - mid, 1)}))
PY
