"""`python -m bench gpu-wheels [--out .gpu-wheels] [--check-only]`: the wheels a GPU machine's image lacks,
fetched here and checked for it (bench.gpu.wheels)."""

from __future__ import annotations

import argparse

from bench.cli.common import path_arg
from bench.core.errors import UserError, last_line
from bench.gpu import wheels


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "gpu-wheels", help="fetch the wheels the GPU machines' image lacks (CPython 3.12, x86-64) and check them",
        description="Fills a folder with a CPython 3.12 x86-64 wheel of every requirement of condbench that the "
                    "GPU machines' image lacks (bench/gpu/image-packages.txt), and of theirs, none of torch, triton "
                    "or anything else the image holds; then checks that every requirement is met by the folder "
                    "or the image and that pip accepts the wheels for Python 3.12. Prints the install line.")
    p.add_argument("--out", type=path_arg, default=wheels.WHEELS, help="the folder (git-ignored; it travels "
                   "with the GPU command)")
    p.add_argument("--check-only", action="store_true", help="fetch nothing: check what the folder holds")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.check_only:
        if not args.out.is_dir():
            raise UserError(f"--out {args.out}: no such folder (fetch the wheels first, without --check-only)")
    else:
        wheels.download(args.out)
    held = wheels.wheels_in(args.out)
    missing = wheels.unmet(args.out)
    if missing:
        raise UserError(f"{args.out}: " + "; ".join(missing))
    verdict = wheels.pip_dry_run(args.out)
    if verdict.returncode != 0:
        raise UserError(f"{args.out}: pip refuses these wheels for CPython {wheels.PYTHON}: "
                        + last_line(verdict.stderr, "(no message)"))
    size = sum(w.path.stat().st_size for w in held.values()) / 2**20
    print(f"{len(held)} wheel(s), {size:.1f} MiB, in {args.out}: " + ", ".join(
        f"{w.name} {w.version}" for w in sorted(held.values(), key=lambda w: w.name)))
    print(f"every requirement met by them or the image; pip accepts them for CPython {wheels.PYTHON}. On the GPU "
          f"machine, from the checkout's root:\n  {wheels.INSTALL}")
    return 0
