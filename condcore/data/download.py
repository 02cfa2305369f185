"""Explicit, checksummed downloads of the paper's datasets. Nothing here runs unless a user asks."""

from __future__ import annotations

import hashlib
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RemoteFile:
    url: str
    name: str
    algorithm: str  # "sha256"; SVHN publishes only md5 digests, so those are checked as md5
    digest: str


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_SVHN = "http://ufldl.stanford.edu/housenumbers/"
SOURCES: dict[str, list[RemoteFile]] = {
    "mnist": [
        RemoteFile(_MNIST + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "sha256",
                   "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        RemoteFile(_MNIST + "train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", "sha256",
                   "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        RemoteFile(_MNIST + "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "sha256",
                   "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        RemoteFile(_MNIST + "t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "sha256",
                   "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ],
    "cifar10": [
        RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz", "sha256",
                   "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"),
    ],
    "svhn": [
        RemoteFile(_SVHN + "train_32x32.mat", "train_32x32.mat", "md5", "e26dedcc434d2e4c54c9b2d4a06d8373"),
        RemoteFile(_SVHN + "test_32x32.mat", "test_32x32.mat", "md5", "eb5a983be6a315427106f1b164d9cef3"),
    ],
}


class DownloadError(RuntimeError):
    """A download could not be made or did not match its published checksum."""


def file_digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(remote: RemoteFile, folder: Path, timeout: float = 30.0) -> Path:
    """Downloads one file into folder (skipped when a verified copy is there); verifies its digest."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    if target.exists() and file_digest(target, remote.algorithm) == remote.digest:
        return target
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with urllib.request.urlopen(remote.url, timeout=timeout) as response, open(partial, "wb") as out:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                out.write(chunk)
    except (urllib.error.URLError, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"could not download {remote.url}: {exc} (is there network access?)") from exc
    got = file_digest(partial, remote.algorithm)
    if got != remote.digest:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{remote.name}: {remote.algorithm} {got} does not match the published {remote.digest}")
    partial.replace(target)
    return target


def download(name: str, data_dir: Path) -> Path:
    """Downloads dataset `name` into data_dir/<name>/ in the layout the loaders read."""
    if name not in SOURCES:
        raise DownloadError(f"no download for dataset {name!r}; choose one of {', '.join(SOURCES)}")
    folder = data_dir / name
    if data_dir.exists() and not data_dir.is_dir() or folder.exists() and not folder.is_dir():
        raise DownloadError(f"{data_dir if not data_dir.is_dir() else folder}: is a file, not a folder for the dataset")
    made = [p for p in (folder, data_dir) if not p.exists()]  # what a failure must not leave behind, empty
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for remote in SOURCES[name]:
            path = fetch(remote, folder)
            if path.name.endswith(".tar.gz"):
                with tarfile.open(path) as archive:
                    archive.extractall(folder, filter="data")
    except OSError as exc:  # a read-only place, /proc, a full disk
        raise DownloadError(f"{folder}: cannot write the dataset there: {exc.strerror or exc}") from None
    finally:
        for made_folder in made:  # a failed first download leaves no empty folder that looks like a dataset
            if made_folder.is_dir() and not any(made_folder.iterdir()):
                made_folder.rmdir()
    return folder
