"""CondNet end to end on the embedded digits set: it learns, its policy moves toward tau, and its
sparse inference agrees with the masked dense math."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from condcore.data import load_dataset
from condcore.mask_export import export_masks, load_masks
from condcore.models import CondNet, CondNetConfig
from condcore.ops import block_sparse_linear
from condcore.speed import dense_twin, inference_speedup
from condcore.train import TrainConfig, evaluate, load_checkpoint, save_checkpoint, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def small_net(data, policy: str, tau: float = 0.25) -> CondNet:
    torch.manual_seed(0)
    return CondNet(CondNetConfig(data.n_features, data.n_classes, hidden=[256, 256], block_size=32, policy=policy, tau=tau))


@pytest.fixture(scope="module")
def trained(digits):
    model = small_net(digits, "reinforce")
    untrained_density = evaluate(model, digits.valid, "sample").density
    result = train(model, digits, TrainConfig(epochs=20, seed=0), progress=False)
    return result, untrained_density


def test_reinforce_condnet_learns_and_stays_at_tau(digits, trained):
    result, untrained_density = trained
    test = evaluate(result.model, digits.test, "threshold")
    assert test.accuracy > 0.85  # chance is 0.10
    tau = 0.25
    for before, after in zip(untrained_density, test.density):
        assert abs(before - tau) < 0.1  # the policy starts at its target density
        assert abs(after - tau) < 0.1  # and learning to classify does not pull it away
    assert len(result.history) == 20 and result.seconds > 0


@pytest.mark.parametrize(
    "policy,tau,mode",
    [("dense", 1.0, "threshold"), ("random", 0.5, "sample"), ("straight-through", 0.5, "threshold"), ("topk", 0.25, "topk")],
)
def test_other_learners_train(digits, policy, tau, mode):
    model = small_net(digits, policy, tau)
    train(model, digits, TrainConfig(epochs=10, seed=0), progress=False)
    test = evaluate(model, digits.test, mode)
    assert test.accuracy > 0.7
    if policy == "dense":
        assert test.density == [1.0, 1.0]
    if policy == "topk":
        assert test.density == [0.25, 0.25]


def test_sparse_inference_equals_masked_dense_math(digits, trained):
    model = trained[0].model.eval()
    x = digits.test.x[:40]
    torch.manual_seed(1)
    trace = model(x, mode="sample")
    h = x
    for linear, mask in zip(model.hidden, trace.masks):
        h = F.relu(linear(h)) * mask.repeat_interleave(32, dim=1)
    torch.testing.assert_close(trace.logits, model.output(h), rtol=1e-5, atol=1e-5)


def test_training_is_deterministic_for_a_seed(digits):
    def run():
        model = small_net(digits, "reinforce")
        train(model, digits, TrainConfig(epochs=2, seed=3), progress=False)
        return model.output.weight.detach().clone()

    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


def test_checkpoint_and_masks_round_trip(digits, trained, tmp_path):
    result = trained[0]
    cfg = TrainConfig(epochs=20, seed=0)
    metrics = save_checkpoint(result, digits, cfg, tmp_path)
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["test_accuracy"] == metrics["test_accuracy"] and len(on_disk["density"]) == 2
    assert on_disk["inference_mode"] == "threshold" and on_disk["train_seconds"] > 0
    model, loaded_metrics = load_checkpoint(tmp_path / "model.pt")
    assert evaluate(model, digits.test, "threshold").accuracy == pytest.approx(metrics["test_accuracy"])
    masks = export_masks(model, digits.test, "threshold", tmp_path / "masks.npz", dataset="digits")
    loaded = load_masks(tmp_path / "masks.npz")
    assert loaded.meta == masks.meta and loaded.meta["block_size"] == 32
    for a, b in zip(loaded.layers, masks.layers):
        assert torch.equal(a, b) and a.shape == (len(digits.test), 8)
    assert loaded.meta["density"] == pytest.approx(metrics["density"])


def test_dense_twin_and_speed_measurement(digits, trained):
    model = trained[0].model
    twin = dense_twin(model)
    x = digits.test.x[:16]
    with torch.no_grad():
        h = x
        for linear in model.hidden:
            h = F.relu(linear(h))
        torch.testing.assert_close(twin(x).logits, model.output(h))
    speed = inference_speedup(model, [x, digits.test.x[16:32]], "threshold", rounds=3)
    assert speed.batch == 16 and speed.dense_s > 0 and speed.sparse_s > 0


def test_a_model_whose_timed_forward_disagrees_with_the_reference_is_a_failed_row(digits, trained, monkeypatch):
    """The timed forward (here the native one) is checked against the layers on the reference kernel
    before it is timed; a disagreement is the row's error, with no timings, and the report says so."""
    import io

    from rich.console import Console

    from bench.core.schema import ModelRow
    from bench.measure.model import TimedModel, time_models
    from bench.report.terminal import print_models
    from condcore.ops.cpu import pairs as condnet_native

    result = trained[0]
    forward = condnet_native.condnet_forward

    def off_by_a_bit(x, network):
        logits, masks = forward(x, network)
        return logits + 1e-2, masks

    monkeypatch.setattr(condnet_native, "condnet_forward", off_by_a_bit)
    metrics = {"dataset": "digits", "policy": "reinforce", "tau": 0.25, "inference_mode": "threshold",
               "test_error": 0.1, "density": [0.25, 0.25], "train_seconds": 1.0}
    fields = time_models([TimedModel("m", result.model, metrics, digits)], (1, 4), rounds=2, providers=("ours",),
                         threads=1)["m"]
    assert fields["error"].startswith("batch 1: logits differ from the reference by up to 0.01")
    assert "metrics" not in fields
    row = ModelRow(name="m", seed=0, **fields)
    from pathlib import Path

    from bench.report.data import report_data
    from bench.store.results import Run

    console = Console(file=io.StringIO(), width=200)
    (part,) = report_data(Run(Path("run"), {}, model_rows=[row])).parts
    print_models(part, console)
    assert "reinforce tau = 0.25 not timed: batch 1: logits differ" in console.file.getvalue()


def test_bad_configs(digits):
    with pytest.raises(ValueError, match="multiple of block size"):
        CondNet(CondNetConfig(64, 10, hidden=[100], block_size=32))
    with pytest.raises(ValueError, match="optimizer"):
        train(small_net(digits, "dense"), digits, TrainConfig(optimizer="lbfgs"), progress=False)
    with pytest.raises(ValueError, match="unknown mode"):
        small_net(digits, "dense")(digits.test.x[:2], mode="argmax")


@pytest.mark.parametrize("policy", ["reinforce", "random", "topk"])
@pytest.mark.parametrize("batch", [64, 5])  # the grouped kernel's sparse backward, and the union's dense one
@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16-autocast"])
def test_sparse_training_step_equals_the_dense_masked_step(digits, policy, batch, bf16, monkeypatch):
    """Skipping the dropped blocks in training changes no loss and no gradient (in bf16, none beyond
    bf16 rounding: the dense path rounds whole products, the sparse one block by block)."""
    from condcore.models import condnet

    sparse_calls = []

    def spy(*args, **kwargs):
        sparse_calls.append(1)
        return block_sparse_linear(*args, **kwargs)

    monkeypatch.setattr(condnet, "SPARSE_TRAIN_MIN_IN_FEATURES", 0)  # this small net's layers too
    monkeypatch.setattr(condnet, "block_sparse_linear", spy)
    model = small_net(digits, policy, 0.25)
    x, y = digits.train.x[:batch], digits.train.y[:batch]

    def grads(sparse: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for gate in model.gates:
            gate.sparse_in_training = sparse  # instance attribute shadows the class's
        model.zero_grad()
        torch.manual_seed(1)  # the same sampled masks both times
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            trace = model(x, mode="train")
        loss = F.cross_entropy(trace.logits.float(), y) + sum(g.prob.sum() for g in trace.gates if g.prob is not None)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    dense_loss, dense_grads = grads(False)
    assert not sparse_calls
    sparse_loss, sparse_grads = grads(True)
    assert len(sparse_calls) == 2  # both hidden layers took the sparse path
    tol = (2e-2, 2e-3) if bf16 else (1e-4, 1e-5)
    torch.testing.assert_close(sparse_loss, dense_loss, rtol=tol[0], atol=tol[1])
    assert len(sparse_grads) == len(dense_grads)
    for got, want in zip(sparse_grads, dense_grads):
        assert got.dtype == want.dtype == torch.float32
        scale = max(want.abs().max().item(), 1e-3)
        torch.testing.assert_close(got / scale, want / scale, rtol=tol[0], atol=tol[0])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_precisions_train_and_are_recorded(digits, precision, tmp_path):
    model = small_net(digits, "topk")
    cfg = TrainConfig(epochs=6, seed=0, precision=precision, valid_every=4, inference_mode="topk")
    result = train(model, digits, cfg, progress=False)
    assert result.precision == precision
    assert evaluate(model, digits.test, "topk").accuracy > 0.6
    assert all(p.dtype == torch.float32 for p in model.parameters())  # bf16 is for the GEMMs only
    # Validation after epochs 4 and 6 (the last), not after every epoch.
    assert [r["epoch"] for r in result.history if "valid_accuracy" in r] == [4, 6]
    assert json.loads(json.dumps(save_checkpoint(result, digits, cfg, tmp_path)))["precision"] == precision


def test_auto_precision_resolves_to_what_the_machine_runs():
    from condcore.train import native_bf16

    cpu = torch.device("cpu")
    assert TrainConfig(precision="auto").resolved_precision(cpu) == ("bf16" if native_bf16(cpu) else "fp32")
    assert TrainConfig(precision="fp32").resolved_precision(cpu) == "fp32"
    with pytest.raises(ValueError, match="unknown precision"):
        TrainConfig(precision="fp8").validate()


def test_a_model_case_names_its_training_batch_and_learning_rate_and_trains_with_them(tmp_path, digits):
    from bench.measure.train import train_or_reuse
    from bench.plan.models import ModelCase

    case = ModelCase("digits", "reinforce", 0.5, (64, 64), 16, 1, batch_size=32, lr=0.003)
    other = ModelCase("digits", "reinforce", 0.5, (64, 64), 16, 1)
    assert case.name != other.name and "-b32-lr0.003-" in case.name
    _, metrics = train_or_reuse(case, digits, tmp_path, progress=False)
    assert (metrics["train"]["batch_size"], metrics["train"]["lr"]) == (32, 0.003)


def test_a_checkpoint_of_an_older_training_version_is_trained_again(tmp_path, digits):
    from bench.measure.train import is_trained, train_or_reuse
    from bench.plan.models import ModelCase

    case = ModelCase("digits", "reinforce", 0.5, (64, 64), 16, 1)
    train_or_reuse(case, digits, tmp_path, progress=False)
    metrics_file = tmp_path / case.name / "metrics.json"
    assert is_trained(case, tmp_path)
    metrics = json.loads(metrics_file.read_text())
    metrics_file.write_text(json.dumps({**metrics, "training_version": 1}))
    assert not is_trained(case, tmp_path)
    _, retrained = train_or_reuse(case, digits, tmp_path, progress=False)
    assert retrained["training_version"] == metrics["training_version"] and is_trained(case, tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "empty", "garbage", "masks garbage"])
def test_a_damaged_checkpoint_is_said_and_trained_again(tmp_path, digits, capsys, damage):
    """Found probing: a truncated model.pt beside an intact metrics.json killed every later run with a
    traceback until deleted by hand."""
    from bench.measure.train import train_or_reuse
    from bench.plan.models import ModelCase

    case = ModelCase("digits", "reinforce", 0.5, (32, 32), 16, 1)
    train_or_reuse(case, digits, tmp_path, progress=False)
    folder = tmp_path / case.name
    target = folder / ("masks.npz" if damage.startswith("masks") else "model.pt")
    raw = target.read_bytes()
    target.write_bytes({"truncated": raw[: len(raw) // 2], "empty": b""}.get(damage, b"\x00garbage" * 50))
    capsys.readouterr()
    model, metrics = train_or_reuse(case, digits, tmp_path, progress=False)
    err = capsys.readouterr().err
    assert "is damaged" in err and "training it again" in err
    assert metrics["test_error"] < 1 and model(digits.test.x[:2]).logits.shape == (2, 10)
    # trained again, whole: the next use reuses it without a word
    train_or_reuse(case, digits, tmp_path, progress=False)
    assert "damaged" not in capsys.readouterr().err
    assert not list(folder.glob(".*.tmp*"))  # no temporary file left beside it


def test_bf16_training_without_native_bf16_warns_that_it_is_emulated(digits, monkeypatch):
    import condcore.train as training

    monkeypatch.setattr(training, "native_bf16", lambda device: False)
    with pytest.warns(RuntimeWarning, match="emulated"):
        train(small_net(digits, "reinforce"), digits, TrainConfig(epochs=1, precision="bf16"), progress=False)
    assert TrainConfig(precision="auto").resolved_precision(torch.device("cpu")) == "fp32"


def test_flop_ideal_counts_active_pairs_and_policies():
    """By hand for a 2-hidden-layer net: every block on gives the dense count plus the policies;
    the dense net's ideal is 1."""
    from condcore.speed import flop_ideal

    torch.manual_seed(0)
    x = torch.randn(5, 32)
    dense = CondNet(CondNetConfig(32, 10, hidden=[64, 64], block_size=16, policy="dense", tau=1.0))
    assert flop_ideal(dense, x, "threshold") == pytest.approx(1.0)
    model = CondNet(CondNetConfig(32, 10, hidden=[64, 64], block_size=16, policy="reinforce", tau=0.5))
    masks = model.eval()(x, mode="threshold").masks
    a0, a1 = (m.sum(dim=1).double() * 16 for m in masks)
    sparse = 2 * 32 * a0 + 2 * a0 * a1 + 2 * a1 * 10 + 2 * 32 * 4 + 2 * 64 * 4
    want = (2 * 32 * 64 + 2 * 64 * 64 + 2 * 64 * 10) / float(sparse.mean())
    assert flop_ideal(model, x, "threshold") == pytest.approx(want)
