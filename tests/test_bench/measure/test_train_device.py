"""Training a suite's models where their section says: the dataset moved there, a checkpoint that names
the device, the files written from the CPU copy, and GPU models trained in this process."""

from __future__ import annotations

import pytest
import torch

from bench.measure.train import dataset_on, train_or_reuse
from bench.plan.models import ModelCase
from condcore.data import load_dataset
from condcore.train import load_checkpoint


def test_a_dataset_is_moved_split_by_split_and_left_alone_on_the_cpu():
    data = load_dataset("digits")
    assert dataset_on(data, "cpu") is data
    moved = dataset_on(data, "meta")  # a device without memory: every tensor moved, nothing computed
    for split in ("train", "valid", "test"):
        assert getattr(moved, split).x.device.type == "meta" and getattr(moved, split).y.device.type == "meta"
        assert getattr(moved, split).x.shape == getattr(data, split).x.shape
    assert (moved.name, moved.n_classes, moved.n_features) == (data.name, data.n_classes, data.n_features)
    assert data.train.x.device.type == "cpu"


def test_a_model_trained_on_a_gpu_names_it_and_one_on_the_cpu_is_named_as_before():
    cpu = ModelCase("digits", "reinforce", 0.25, (64, 64), 16, 1)
    assert cpu.name == "digits-reinforce-tau0.25-h64x64-k16-e1-b64-lr0.001-auto-s0"
    assert ModelCase("digits", "reinforce", 0.25, (64, 64), 16, 1, device="cuda").name == (
        "digits-reinforce-tau0.25-h64x64-k16-e1-b64-lr0.001-auto-cuda-s0")


@pytest.mark.gpu
def test_a_model_trains_on_the_gpu_and_its_checkpoint_loads_on_the_cpu(tmp_path):
    case = ModelCase("digits", "reinforce", 0.25, (64, 64), 16, 2, device="cuda")
    model, metrics = train_or_reuse(case, load_dataset("digits"), tmp_path, progress=False)
    assert next(model.parameters()).device.type == "cpu" and metrics["precision"] in ("bf16", "fp32")
    loaded, _ = load_checkpoint(tmp_path / case.name / "model.pt")
    assert torch.equal(loaded.hidden[0].weight, model.hidden[0].weight)
    assert (tmp_path / case.name / "masks.npz").is_file()
