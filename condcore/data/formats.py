"""Readers for the on-disk formats of the paper's datasets: MNIST IDX, CIFAR-10 pickles, SVHN .mat."""

from __future__ import annotations

import codecs
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DataFormatError(ValueError):
    """A data file exists but is not what its format promises."""


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (MNIST), plain or gzipped: magic 0x0000TTDD, DD big-endian uint32 sizes, then data."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataFormatError(f"{path}: not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    count = int(np.prod(shape)) if shape else 1
    if len(raw) != header + count * dtype.itemsize:
        raise DataFormatError(f"{path}: IDX header says shape {shape} but the file holds {len(raw) - header} data bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def _numpy_core():
    # numpy 2 moved numpy.core to numpy._core; the CIFAR files (pickled by numpy 1) name the old one
    return getattr(np, "_core", None) or np.core


# What a CIFAR-10 batch's pickle may name, and nothing else: a pickle is a program, and one that names
# os.system runs it on load (a data folder is as untrusted as any download; the checksum is checked
# only when condbench downloads it).
_CIFAR_GLOBALS = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_core().multiarray._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_core().multiarray._reconstruct,
    ("numpy.core.numeric", "_frombuffer"): lambda: _numpy_core().numeric._frombuffer,
    ("numpy._core.numeric", "_frombuffer"): lambda: _numpy_core().numeric._frombuffer,
    ("_codecs", "encode"): lambda: codecs.encode,  # how protocol 2 spells bytes
}


class _CifarUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        found = _CIFAR_GLOBALS.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"it names {module}.{name}, which a CIFAR-10 batch never holds; "
                                         "refused without running it")
        return found()


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch: a pickled dict with b'data' (N, 3072) uint8 and b'labels'. Read with
    an unpickler that admits only the numpy types such a batch holds, so a planted pickle runs nothing."""
    with open(path, "rb") as f:
        try:
            batch = _CifarUnpickler(f, encoding="bytes").load()
        except Exception as exc:  # any unpickling failure means a wrong, damaged or hostile file
            raise DataFormatError(f"{path}: not a CIFAR-10 python batch ({exc})") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        raise DataFormatError(f"{path}: not a CIFAR-10 python batch (no b'data'/b'labels')")
    if getattr(batch[b"data"], "dtype", None) == object:
        raise DataFormatError(f"{path}: CIFAR-10 batch data holds Python objects, not pixels")
    data = np.asarray(batch[b"data"], dtype=np.uint8)
    labels = np.asarray(batch[b"labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise DataFormatError(f"{path}: CIFAR-10 batch has data {data.shape} and {len(labels)} labels")
    return data, labels


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An SVHN cropped-digits .mat file: X (32, 32, 3, N) uint8, y (N, 1) with digit 0 stored as 10."""
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except Exception as exc:
        raise DataFormatError(f"{path}: not a MATLAB file ({exc})") from exc
    if "X" not in mat or "y" not in mat:
        raise DataFormatError(f"{path}: SVHN .mat file needs variables X and y")
    images = np.asarray(mat["X"])
    labels = np.asarray(mat["y"]).reshape(-1).astype(np.int64)
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise DataFormatError(f"{path}: SVHN X has shape {images.shape} for {len(labels)} labels")
    labels[labels == 10] = 0
    return images.transpose(3, 2, 0, 1).reshape(len(labels), -1), labels
