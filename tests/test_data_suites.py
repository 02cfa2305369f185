"""A suite's models section on each file-based dataset, end to end through `bench run`, on tiny stand-in
files written in the dataset's real on-disk format (IDX, CIFAR-10 pickle batches, SVHN .mat): the
loaders, the plan-time refusal without files and a whole run are tested in CI without the network."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import yaml
from bench_cli import bench
from test_data import write_idx

from bench.store.results import load_run


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


def suite_text(dataset: str, data_dir: str) -> str:
    return yaml.safe_dump({"name": f"on-{dataset}", "repeats": 2, "threads": 1, "models": {
        "dataset": dataset, "data_dir": data_dir, "hidden": [32, 32], "block_size": 16, "epochs": 1,
        "policies": ["dense", "reinforce"], "taus": [[0.5, 0.25]], "activation": "tanh", "dense_widths": [16],
        "providers": ["ours", "torch"], "batches": [1, 8]}})


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(WRITERS))
def test_a_suite_runs_on_stand_in_files_in_the_real_format(dataset, tmp_path):
    WRITERS[dataset](tmp_path / "data" / dataset, np.random.default_rng(0))
    (tmp_path / "s.yaml").write_text(suite_text(dataset, "data"))
    proc = bench("run", "s.yaml", "--results", "res", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = (tmp_path / "res" / "runs").iterdir()
    run = load_run(folder)
    assert set(run.models["dataset"]) == {dataset} and len(run.models) == 3  # dense, reinforce, dense w = 16
    per_layer = run.models.set_index("policy").loc["reinforce", "realized_density"]
    assert len(per_layer) == 2


@pytest.mark.parametrize("dataset", list(WRITERS))
def test_a_suite_without_its_files_names_the_download_command(dataset, tmp_path):
    (tmp_path / "s.yaml").write_text(suite_text(dataset, "nowhere"))
    proc = bench("run", "s.yaml", "--results", "res", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"python -m bench data download {dataset}" in proc.stderr
    assert not (tmp_path / "res").exists()
