"""Tiny stand-in dataset files in each dataset's real on-disk format (IDX, CIFAR-10 pickle batches, SVHN
.mat): the loaders and the suites that read them are tested without the network."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import scipy.io


def write_idx(path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def write_mnist(folder: Path, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    for stem, n in (("train", 240), ("t10k", 60)):
        write_idx(folder / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), gz=True)
        write_idx(folder / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 10, n), gz=True)


def write_cifar10(folder: Path, rng: np.random.Generator) -> None:
    folder = folder / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (40, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, 40).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def write_svhn(folder: Path, rng: np.random.Generator) -> None:
    folder.mkdir(parents=True)
    for name, n in (("train_32x32.mat", 200), ("test_32x32.mat", 50)):
        labels = rng.integers(1, 11, (n, 1)).astype(np.uint8)  # SVHN stores the digit 0 as 10
        scipy.io.savemat(folder / name, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8), "y": labels})


WRITERS = {"mnist": write_mnist, "cifar10": write_cifar10, "svhn": write_svhn}
