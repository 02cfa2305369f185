"""The command line as a user meets it: real runs, and mistakes answered in one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.bench_cli import bench


def test_train_writes_checkpoint_metrics_and_masks(tmp_path):
    out = tmp_path / "model"
    proc = bench("train", "--dataset", "digits", "--policy", "reinforce", "--tau", "0.25", "--seed", "0",
                 "--epochs", "3", "--hidden", "128,128", "--out", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["test_accuracy"] <= 1.0 and len(metrics["density"]) == 2
    assert (out / "model.pt").exists() and (out / "masks.npz").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["train", "--dataset", "mnist", "--out", "x"], "pass --data-dir"),
        (["train", "--tau", "1.5", "--out", "x"], "--tau: must be between 0 and 1, got 1.5"),
        (["train", "--block-size", "7", "--out", "x"], "not a positive multiple of block size"),
        (["train", "--policy", "oracle", "--out", "x"], "invalid choice"),
        (["train", "--hidden", "12,-4", "--out", "x"], "positive integers"),
        (["train", "--epochs", "0", "--out", "x"], "--epochs: must be between 1 and"),
        (["train", "--tau", "nan", "--out", "x"], "--tau: must be between 0 and 1, got nan"),
        (["train", "--tau", "0", "--out", "x"], "tau must be in (0, 1]"),
        (["train"], "--out"),
        (["data", "download", "imagenet"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(args, message, tmp_path):
    proc = bench(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_models_trains_a_grid_and_times_it(tmp_path):
    out = tmp_path / "grid"
    proc = bench("models", "--policies", "dense,reinforce", "--taus", "0.5", "--hidden", "64,64", "--block-size",
                 "16", "--epochs", "1", "--batches", "4", "--rounds", "3", "--threads", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    table = (out / "models.md").read_text()
    assert "| dense |" in table and "| reinforce |" in table
    assert len((out / "models.csv").read_text().splitlines()) == 3
    # Each model under each provider: a time, or why there is none (a CondNet is not a plain MLP).
    assert "| model | B | ours | torch | onnxruntime | torch_compile |" in table
    assert "| reinforce τ = 0.5 | 4 | " in table and "| skipped | skipped | skipped |" in table
    times = (out / "model_times.csv").read_text()
    assert "per-example block masks" in times


def test_help_shows_every_options_default(tmp_path):
    proc = bench("train", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    # Options without help text show their default too; the defaults are the default suite's model.
    assert "--block-size BLOCK_SIZE (default: 128)" in text and "(default: [2048, 2048])" in text
    assert "--epochs EPOCHS (default: 20)" in text


def test_the_condbench_command_is_the_same_cli_and_says_its_version(tmp_path):
    import subprocess
    import sys
    from importlib.metadata import version

    from bench.machine.fingerprint import git_commit

    condbench = Path(sys.executable).with_name("condbench")  # the console script the install put beside python
    shown = subprocess.run([str(condbench), "--help"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert shown.returncode == 0 and shown.stdout.startswith("usage: condbench")
    assert all(command in shown.stdout for command in ("run", "export", "compare", "merge"))
    said = subprocess.run([str(condbench), "--version"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert said.returncode == 0, said.stderr
    revision = git_commit()
    assert said.stdout.strip() == f"condbench {version('condbench')}" + (f" (git {revision})" if revision != "unknown" else "")
    wrong = subprocess.run([str(condbench), "nonsense"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
