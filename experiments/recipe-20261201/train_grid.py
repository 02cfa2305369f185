"""Train the default suite's model grid with a given batch size / lr into a folder; print wall time and errors."""
import sys, time, json
from pathlib import Path
from bench.plan.suite import load_suite
from bench.plan.cases import model_cases
from bench.measure.train import Datasets, train_missing
import torch
def main():
    suite_path, batch, lr, out = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), Path(sys.argv[4])
    suite = load_suite(Path(suite_path))
    suite = suite.model_copy(update={"models": suite.models.model_copy(update={"batch_size": batch, "lr": lr})})
    cases = model_cases(suite)
    torch.set_num_threads(2)
    t = time.perf_counter()
    train_missing(cases, Datasets("digits", None), out, 2, on_done=lambda c: print(f"{time.perf_counter()-t:6.1f}s {c.name}", flush=True))
    print("wall", time.perf_counter() - t)
    for c in cases:
        m = json.loads((out / c.name / "metrics.json").read_text())
        print(f"{c.policy:17s} {c.tau:<5g} s{c.seed} err {100*m['test_error']:6.2f} dens {[round(d,3) for d in m['density']]} {m['train_seconds']:.1f}s")
if __name__ == "__main__":
    main()
