"""A/B, one process, interleaved: the paper's own CPU kernel (bengioe/condnet, Gemm_ss in
theano_tools/sparse_dot/cpu_gemm.py: both masks, one thread) against ours (block_sparse_linear on the
CPU inside frozen_weights(), the pair kernel), its C++ call alone (the packed weight and the output
made once, no Python checks: what the Python around a call costs) and the dense x @ W.T, K = N = 2048, fp32, iid masks of
density d on both sides.

Its C body is read from a checkout of that repository at run time (nothing of it ships with condbench),
wrapped in a C function with contiguous strides, built with gcc -O3 -march=native (the flags ours has)
and called through ctypes into a zeroed output. Every kernel's output is checked against the float64
reference first.

    python experiments/paper-kernel-20261202/paper_kernel_ab.py PATH_TO_condnet_CHECKOUT [rounds]
"""

import ctypes
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from condcore.ops import block_sparse_linear, condnet_native, frozen_weights
from condcore.ops.reference import reference_linear

K = N = 2048
WRAPPER = """
#include <stdint.h>
typedef long npy_intp;
void gemm_ss(const float* A_data, const int8_t* amask, const float* B_data, const int8_t* omask,
             const float* C_data, float* O_data, long rows) {
  npy_intp A_strides[2] = {%(p)d, 1}, B_strides[2] = {%(m)d, 1};
  npy_intp amask_strides[2] = {%(p)d / %(bs)d, 1}, omask_strides[2] = {%(m)d / %(bs)d, 1};
  npy_intp c_stride = 1;
  npy_intp odims[] = {rows, %(m)d};
  npy_intp cross_dim = %(p)d;
%(body)s
}
"""


def build_paper_kernel(checkout: Path, block_size: int, folder: Path):
    """Gemm_ss's loop nest (from `int N = odims[0]` to the end of its C string) for one block size."""
    source = (checkout / "theano_tools/sparse_dot/cpu_gemm.py").read_text()
    gemm_ss = source[source.index("class Gemm_ss"):source.index("class Gemm_fs")]
    body = re.search(r"(int N = odims\[0\].*?)\"\"\" % locals\(\)", gemm_ss, re.S).group(1)
    body = body.replace("%(blocksize)s", str(block_size)).replace("%%", "%")
    c_file = folder / f"gemm_ss_{block_size}.c"
    c_file.write_text(WRAPPER % {"p": K, "m": N, "bs": block_size, "body": body})
    so = c_file.with_suffix(".so")
    subprocess.run(["gcc", "-O3", "-march=native", "-shared", "-fPIC", str(c_file), "-o", str(so)], check=True)
    fn = ctypes.CDLL(str(so)).gemm_ss
    fn.restype = None
    return fn


def interleaved(candidates: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call, one sample per round and candidate, the candidates interleaved within each
    round; a sample is one warm call then `number` timed calls on the candidate's thread count."""
    first = {}
    for name, (fn, threads) in candidates.items():
        torch.set_num_threads(threads)
        fn()
        start = time.perf_counter()
        fn()
        first[name] = time.perf_counter() - start
    number = max(1, min(2000, int(2e-3 / max(first.values()))))
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, (fn, threads) in candidates.items():
            torch.set_num_threads(threads)
            fn()
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return times


def main() -> None:
    checkout = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 9
    torch.manual_seed(0)
    weight, bias = torch.randn(N, K) / K**0.5, torch.randn(N)
    weight_t = weight.t().contiguous()  # Gemm_ss computes A @ B + c with B (K, N)
    with tempfile.TemporaryDirectory() as tmp, frozen_weights():
        for k in (64, 128):
            paper = build_paper_kernel(checkout, k, Path(tmp))
            packed, module = condnet_native.pack_weight(weight, k, k), condnet_native._native()
            for batch in (1, 4, 16, 64):
                for density in (0.5, 0.25, 0.1):
                    x = torch.randn(batch, K)
                    in_mask, out_mask = torch.rand(batch, K // k) < density, torch.rand(batch, N // k) < density
                    out = torch.zeros(batch, N)
                    ptr = lambda t: ctypes.c_void_p(t.data_ptr())
                    in8, out8 = in_mask.to(torch.int8), out_mask.to(torch.int8)

                    ours = lambda: block_sparse_linear(x, weight, bias, in_mask=in_mask, out_mask=out_mask, block_size=k)
                    # The paper's kernel writes only active blocks (Theano reused a zeroed output): zeroed
                    # once here, and its timed calls do not pay for zeros.
                    paper_call = lambda: paper(ptr(x), ptr(in8), ptr(weight_t), ptr(out8), ptr(bias), ptr(out),
                                               ctypes.c_long(batch))
                    want = reference_linear(x.double(), weight.double(), bias.double(), in_mask, out_mask, k)
                    paper_call()
                    for name, y in (("paper", out), ("ours", ours())):
                        torch.testing.assert_close(y.double(), want, rtol=1e-4, atol=1e-4, msg=name)
                    dense = lambda: F.linear(x, weight, bias)
                    y_call = torch.empty(batch, N)
                    call = lambda: module.pairs_forward(x, packed, bias, in_mask, out_mask, y_call, torch.get_num_threads())
                    candidates = {"paper (1 thread)": (paper_call, 1), "ours 1 thread": (ours, 1),
                                  "ours 2 threads": (ours, 2), "C++ call 1 thread": (call, 1), "dense 1 thread": (dense, 1), "dense 2 threads": (dense, 2)}
                    times = interleaved(candidates, rounds)
                    med = {name: statistics.median(v) for name, v in times.items()}
                    cells = "  ".join(f"{name} {med[name] * 1e6:8.1f} us" for name in candidates)
                    print(f"k={k:3d} B={batch:3d} d={density:<4}  {cells}  paper/ours(1t) "
                          f"{med['paper (1 thread)'] / med['ours 1 thread']:5.2f}x  paper/ours(2t) "
                          f"{med['paper (1 thread)'] / med['ours 2 threads']:5.2f}x", flush=True)


if __name__ == "__main__":
    main()
