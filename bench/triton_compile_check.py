"""`python -m bench.triton_compile_check`, the old path of `python -m bench compile-check` (results and docs name it)."""

import sys

from bench.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["compile-check", *sys.argv[1:]]))
