"""Usage: PYTHONPATH=<a tree> python experiments/refactor31-20261207/pair_call_ab.py DENSITY
One block_sparse_linear call at batch 1 (K = N = 2048, k = 128, frozen weights: the pair kernel), best
of 15 x 1000 calls in us; run alternately against two trees (results/ab/refactor31-20261207/README.md)."""
import timeit, torch, sys
from condcore.ops import block_sparse_linear, frozen_weights
from condcore.problems import make_problem
torch.set_num_threads(2)
d = float(sys.argv[1])
p = make_problem(1, 2048, 2048, 128, in_density=d, out_density=d, generator=torch.Generator().manual_seed(0))
kw = p.kwargs()
with frozen_weights():
    f = lambda: block_sparse_linear(p.x, p.weight, p.bias, **kw, backend="torch")
    f()
    print(round(min(timeit.repeat(f, number=1000, repeat=15)) / 1000 * 1e6, 2), end=" ")
