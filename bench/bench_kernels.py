"""`python -m bench.bench_kernels`, the old path of `python -m bench kernels` (results and docs name it)."""

import sys

from bench.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["kernels", *sys.argv[1:]]))
