"""suites/paper.yaml: the paper's configurations as the authors' code sets them, its refusal without the
downloaded files, and its smoke run: the same sections, seeds, shapes and recipes on tiny stand-in files
in each dataset's real format, with one epoch and two timing rounds, end to end through `bench run`."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from support.bench_cli import bench
from support.paths import REPO
from support.stand_in_data import WRITERS

from bench.plan.cases import model_sections
from bench.plan.suite import load_suite
from bench.store.results import load_run

PAPER = REPO / "suites" / "paper.yaml"


def test_the_paper_suite_holds_the_authors_configurations():
    suite = load_suite(PAPER)
    assert suite.threads == 1  # the paper's timing protocol: one core, minibatches of 50, and batch 1
    sections = {(m.dataset, m.policies[0]): m for m in suite.models}
    assert set(sections) == {(d, p) for d in ("cifar10", "svhn") for p in ("reinforce", "random", "dense")} | {
        ("mnist", "reinforce")}
    for m in suite.models:
        assert m.batches == [1, 50] and len(m.seeds) >= 3 and m.loss_reduction == "sum" and m.optimizer == "sgd"
    for dataset in ("cifar10", "svhn"):  # policyDropout.py, its two baselines, and SVHN with its recipe
        cond = sections[(dataset, "reinforce")]
        assert (cond.hidden, cond.block_size, cond.activation, cond.lr, cond.batch_size, cond.momentum) == (
            [512, 512, 512], 64, "tanh", 0.001, 128, 0.0)
        assert cond.taus == [[0.25, 1 / 32, 1 / 32]] and cond.lambda_s == [80, 40, 40] and cond.lambda_v == [10, 20, 20]
        assert cond.policy_lr_mult == [0.01, 0.5, 0.5] and cond.policy_l2 == 0.1  # L2reg 0.05 on a squared norm
        block = sections[(dataset, "random")]
        assert (block.hidden, block.block_size, block.taus) == ([640, 640], 64, [0.16])
        assert sections[(dataset, "dense")].hidden == [64, 64]
        assert 512 in cond.dense_widths  # the CondNet's dense twin is on its frontier
    mlp = sections[("mnist", "reinforce")]  # mlp.py
    assert (mlp.hidden, mlp.block_size, mlp.taus, mlp.activation) == ([1024, 1024], 32, [0.05], "relu")
    # every section's models, the frontier's dense nets once each
    cases = [c for _, section_cases in model_sections(suite) for c in section_cases]
    assert len(cases) == len({c.name for c in cases}) == 66


def test_without_the_files_the_paper_suite_names_the_download_command(tmp_path):
    proc = bench("run", PAPER, "--results", "res", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "python -m bench data download cifar10" in proc.stderr
    assert not (tmp_path / "res").exists()


def smoke_suite(text: str) -> str:
    """The paper suite as CI can afford it: one epoch, two rounds, condbench's forward and torch's (the
    other runtimes are checked in the default suite's tests); everything else as it is."""
    suite = yaml.safe_load(text)  # its anchors and merge keys resolved
    suite["repeats"] = 2
    for section in suite["models"]:
        section.update(epochs=1, providers=["ours", "torch"])
    return yaml.safe_dump(suite)


@pytest.mark.slow
def test_the_paper_suite_runs_on_stand_in_files(tmp_path):
    for dataset in ("cifar10", "svhn", "mnist"):
        WRITERS[dataset](tmp_path / "data" / dataset, np.random.default_rng(0))
    (tmp_path / "paper.yaml").write_text(smoke_suite(PAPER.read_text()))
    proc = bench("run", "paper.yaml", "--results", "res", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (folder,) = (tmp_path / "res" / "runs").iterdir()
    run = load_run(folder)
    models = run.models
    assert len(models) == 66 and models["error"].isna().all()
    assert models.groupby("dataset").size().to_dict() == {"cifar10": 24, "svhn": 24, "mnist": 18}
    cond = models[(models["dataset"] == "cifar10") & (models["policy"] == "reinforce")]
    assert len(cond) == 3 and all(len(d) == 3 for d in cond["realized_density"])
    # each dataset's models were timed together, apart from the others', at the protocol's batches
    times = run.model_times.merge(models[["name", "dataset"]], on="name")
    timed = times[times["median_s"].notna()]
    assert set(timed["batch"]) == {1, 50}
    groups = models.dropna(subset=["timing_group"]).groupby("dataset")["timing_group"].nunique()
    assert groups.to_dict() == {"cifar10": 1, "svhn": 1, "mnist": 1}
    assert models.dropna(subset=["timing_group"])["timing_group"].nunique() == 3
    # the reports give each dataset its own frontier
    summary = bench("summary", folder, "--markdown")
    assert summary.returncode == 0, summary.stderr
    for dataset in ("cifar10", "svhn", "mnist"):
        assert f"({dataset};" in summary.stdout or f"the {dataset} models" in proc.stdout + proc.stderr
    page = (folder / "report" / "index.html").read_text()
    assert all(f"Trained models on {d}" in page for d in ("cifar10", "svhn", "mnist"))
    assert "random τ = 0.16 h640x640" in page  # block dropout, another shape than the CondNet's, says it
