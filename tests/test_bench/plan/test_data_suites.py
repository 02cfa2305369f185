"""A suite's models section on each file-based dataset, end to end through `bench run`, on tiny stand-in
files written in the dataset's real on-disk format (IDX, CIFAR-10 pickle batches, SVHN .mat): the
loaders, the plan-time refusal without files and a whole run are tested in CI without the network."""

from __future__ import annotations

import numpy as np
import pytest
from support.bench_cli import bench
from support.stand_in_data import WRITERS
from support.suites import tiny_suite

from bench.store.results import load_run


def suite_text(dataset: str, data_dir: str) -> str:
    return tiny_suite(name=f"on-{dataset}", repeats=2, kernels=None, models={
        "dataset": dataset, "data_dir": data_dir, "hidden": [32, 32], "epochs": 1, "taus": [[0.5, 0.25]],
        "activation": "tanh", "dense_widths": [16]})


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
