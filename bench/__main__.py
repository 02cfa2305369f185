"""python -m bench: the condbench command line (bench.cli.main)."""

import sys

from bench.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
