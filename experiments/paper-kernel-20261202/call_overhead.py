"""Where a batch-1 block_sparse_linear call's time goes (K = N = 2048, k = 128, d = 0.25, both masks,
fp32, inside frozen_weights(), 2 threads): the whole call, then each step of its Python alone, best of
5 repeats of 20,000 calls in a tight loop (warm caches: the interleaved A/B's calls run colder)."""

import timeit

import torch

from condcore.ops import block_sparse_linear, condnet_native, cpu_native, frozen_weights
from condcore.ops.packed_weights import frozen_copy
from condcore.ops.validate import validate_linear_args

K = N = 2048
k = 128


def per_call_us(fn, number: int = 20000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def main() -> None:
    torch.manual_seed(0)
    weight, bias, x = torch.randn(N, K) / K**0.5, torch.randn(N), torch.randn(1, K)
    in_mask, out_mask = torch.rand(1, K // k) < 0.25, torch.rand(1, N // k) < 0.25
    packed, module, y = condnet_native.pack_weight(weight, k, k), condnet_native._native(), torch.empty(1, N)
    steps = {
        "block_sparse_linear (the whole call)":
            lambda: block_sparse_linear(x, weight, bias, in_mask=in_mask, out_mask=out_mask, block_size=k),
        "condnet_native.pairs_linear": lambda: condnet_native.pairs_linear(x, weight, bias, in_mask, out_mask, k, None),
        "the C++ call alone (pybind + kernel)": lambda: module.pairs_forward(x, packed, bias, in_mask, out_mask, y, 2),
        "validate_linear_args": lambda: validate_linear_args(x, weight, bias, in_mask, out_mask, k),
        "cpu_native._load": cpu_native._load,
        "frozen_copy lookup": lambda: frozen_copy(weight, [weight], ("pairs", k), lambda: packed),
        "torch.empty(1, 2048)": lambda: torch.empty(1, N),
    }
    with frozen_weights():
        block_sparse_linear(x, weight, bias, in_mask=in_mask, out_mask=out_mask, block_size=k)
        for name, fn in steps.items():
            print(f"{name:40s} {per_call_us(fn):6.2f} us", flush=True)


if __name__ == "__main__":
    main()
