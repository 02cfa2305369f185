"""Model providers: each runs the same net and gives the same logits, or says in one line why not."""

from __future__ import annotations

import builtins

import pytest
import torch

from bench.core.model_providers import MODEL_PROVIDERS, ProviderUnavailable, as_sequential, export_onnx, onnx_session
from bench.measure.model import TimedModel, time_models
from condcore.data import load_dataset
from condcore.models import CondNet, CondNetConfig


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def net(data, policy: str = "dense", width: int = 64) -> CondNet:
    torch.manual_seed(0)
    tau = 1.0 if policy == "dense" else 0.25
    return CondNet(CondNetConfig(data.n_features, data.n_classes, hidden=[width, width], block_size=16,
                                 policy=policy, tau=tau)).eval()


def metrics(policy: str = "dense", mode: str = "threshold") -> dict:
    # mode "sample" for an untrained CondNet whose blocks must run: its policy at tau 0.25 turns every
    # block off at the threshold
    return {"dataset": "digits", "policy": policy, "tau": 1.0 if policy == "dense" else 0.25,
            "inference_mode": mode, "test_error": 0.05, "density": [1.0, 1.0], "train_seconds": 1.0}


def test_an_exported_onnx_net_gives_the_torch_logits(digits):
    pytest.importorskip("onnxruntime")
    model = net(digits)
    session = onnx_session(export_onnx(model), threads=1)
    for batch in (1, 7, 64):  # the batch dimension is dynamic
        x = digits.test.x[:batch]
        got = torch.as_tensor(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])
        with torch.no_grad():
            torch.testing.assert_close(got, model(x).logits, rtol=1e-5, atol=1e-5)


def test_the_sequential_shares_the_weights_and_a_condnet_is_refused(digits):
    model = net(digits)
    x = digits.test.x[:5]
    with torch.no_grad():
        torch.testing.assert_close(as_sequential(model)(x), model(x).logits)
    with pytest.raises(ProviderUnavailable, match="per-example block masks"):
        as_sequential(net(digits, "reinforce"))


def test_a_missing_runtime_is_one_line(digits, monkeypatch):
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ProviderUnavailable) as exc:
        onnx_session(b"", threads=1)
    assert str(exc.value) == "onnxruntime is not installed (pip install onnxruntime)"


def test_providers_are_checked_first_and_a_failure_is_a_note_not_a_number(digits, monkeypatch):
    """A provider whose logits are off fails its check and gets no time; one that cannot run says why;
    the rest are timed in the same rounds, each model's rows keeping the samples and the group."""
    torch_provider = MODEL_PROVIDERS["torch"]

    def off_by_a_bit(model, mode, threads):
        prepare, run = torch_provider.build(model, mode, threads)
        return prepare, lambda x: run(x) + 1e-2

    monkeypatch.setitem(MODEL_PROVIDERS, "torch", type(torch_provider)("torch", torch_provider.about, off_by_a_bit))
    dense, cond = net(digits), net(digits, "reinforce", 64)
    rows = time_models([TimedModel("dense", dense, metrics(), digits), TimedModel("cond", cond, metrics("reinforce"), digits)],
                       batches=(1, 4), rounds=2, providers=("ours", "torch", "onnxruntime"), threads=1)
    checks = {(name, c.provider): c for name, row in rows.items() for c in row["checks"]}
    assert checks[("dense", "torch")].status == "failed"
    assert checks[("dense", "torch")].error.startswith("logits differ from the reference by up to 0.01")
    assert checks[("cond", "torch")].status == "skipped" and "per-example block masks" in checks[("cond", "torch")].error
    timed = {(name, m.provider, m.batch) for name, row in rows.items() for m in row["metrics"] if m.metric == "time"}
    assert ("dense", "torch", 1) not in timed and ("dense", "ours", 1) in timed and ("cond", "ours", 4) in timed
    if checks[("dense", "onnxruntime")].status == "ok":
        assert ("dense", "onnxruntime", 4) in timed
    assert rows["dense"]["timing_group"] == rows["cond"]["timing_group"]
    # every time a row reports has its rounds beside it, its dense twin's included (the same rounds as the
    # twin's own row keeps for its ours)
    kept = {(s.provider, s.batch): s for s in rows["cond"]["samples"]}
    assert set(kept) == {("ours", 1), ("ours", 4), ("dense", 1), ("dense", 4)}
    assert kept[("dense", 4)].seconds == next(s.seconds for s in rows["dense"]["samples"] if (s.provider, s.batch) == ("ours", 4))
    assert all(s.calls >= 1 for s in kept.values())
    # The CondNet's speedup over its dense twin divides the dense model of its shape, in the same rounds.
    twin = next(m for m in rows["cond"]["metrics"] if m.metric == "speedup" and m.batch == 1)
    assert twin.median > 0


def test_a_condnet_runs_compiled_and_gives_the_reference_logits(digits):
    """ours_compiled is the one provider besides ours that runs a CondNet: condbench's forward under
    torch.compile, checked like the rest before it is timed."""
    cond = net(digits, "reinforce", 32)
    rows = time_models([TimedModel("cond", cond, metrics("reinforce"), digits)], batches=(3,), rounds=1,
                       providers=("ours", "ours_compiled"), threads=1)
    check = next(c for c in rows["cond"]["checks"] if c.provider == "ours_compiled")
    assert check.status == "ok", check.error
    assert check.max_relative_error is not None and check.max_relative_error < 1e-3
    assert any(m.provider == "ours_compiled" and m.metric == "time" for m in rows["cond"]["metrics"])


def test_models_timed_in_bf16_are_checked_in_bf16_and_say_where_they_ran(digits, monkeypatch):
    """A section's inference in bf16 (here on the CPU, as the GPU suite's dry run): each model a bf16 copy,
    every provider checked against the float64 network on the masks the bf16 forward chose, within bf16's
    tolerance; ONNX Runtime says it runs float32 on the CPU; the rows name the device and dtype and carry
    the bf16 inference's own test error. A provider off by more than bf16 rounding still fails."""
    torch_provider = MODEL_PROVIDERS["torch"]

    def off_by_a_tenth(model, mode, threads):
        prepare, run = torch_provider.build(model, mode, threads)
        return prepare, lambda x: 1.1 * run(x)

    dense, cond = net(digits), net(digits, "reinforce", 64)
    models = [TimedModel("dense", dense, metrics(), digits), TimedModel("cond", cond, metrics("reinforce", "sample"), digits)]
    rows = time_models(models, batches=(1, 17), rounds=2, providers=("ours", "torch", "onnxruntime"), threads=1,
                       device="cpu", dtype="bfloat16")
    assert {p.dtype for p in dense.parameters()} == {torch.float32}  # the models themselves are left as they were
    checks = {(name, c.provider): c for name, row in rows.items() for c in row["checks"]}
    for key in [("dense", "ours"), ("dense", "torch"), ("cond", "ours")]:
        assert checks[key].status == "ok" and 0 < checks[key].max_relative_error <= 5e-2, (key, checks[key])
    assert checks[("dense", "onnxruntime")].status == "skipped"
    assert "CPU execution provider in float32; this model runs on cpu in bfloat16" in checks[("dense", "onnxruntime")].error
    for name, model in (("dense", dense), ("cond", cond)):
        row = rows[name]
        assert (row["device"], row["inference_dtype"]) == ("cpu", "bfloat16") and "error" not in row
        assert 0 <= row["inference_test_error"] <= 1
        with torch.no_grad(), torch.random.fork_rng():  # bf16's error near float32's, not equal by construction
            torch.manual_seed(0)
            logits = model(digits.test.x, mode=rows[name]["inference_mode"]).logits
            fp32_error = 1 - (logits.argmax(1) == digits.test.y).float().mean().item()
        assert abs(row["inference_test_error"] - fp32_error) < 0.05
        assert {(m.provider, m.batch) for m in row["metrics"] if m.metric == "speedup"} == {("ours", 1), ("ours", 17)}

    monkeypatch.setitem(MODEL_PROVIDERS, "torch", type(torch_provider)("torch", torch_provider.about, off_by_a_tenth))
    rows = time_models(models[:1], batches=(4,), rounds=1, providers=("ours", "torch"), threads=1, dtype="bfloat16")
    (check,) = [c for c in rows["dense"]["checks"] if c.provider == "torch"]
    assert check.status == "failed" and "of their largest at batch 4 (tolerance 0.05)" in check.error
    float32 = time_models(models[:1], batches=(4,), rounds=1, providers=("ours",), threads=1)["dense"]
    assert (float32["device"], float32["inference_dtype"]) == ("cpu", "float32") and "inference_test_error" not in float32


@pytest.mark.gpu
def test_models_on_cuda_in_bf16_are_checked_and_timed_on_the_device(digits):
    """What gpu.yaml's models section does, small: the models copied to the GPU in bf16, each provider
    checked there, the samples synchronized with the device."""
    dense, cond = net(digits), net(digits, "reinforce", 64)
    rows = time_models([TimedModel("dense", dense, metrics(), digits),
                        TimedModel("cond", cond, metrics("reinforce", "sample"), digits)],
                       batches=(1, 64), rounds=2, providers=("ours", "torch"), threads=1, device="cuda", dtype="bfloat16")
    for name in ("dense", "cond"):
        row = rows[name]
        assert "error" not in row and (row["device"], row["inference_dtype"]) == ("cuda", "bfloat16")
        ours = next(c for c in row["checks"] if c.provider == "ours")
        assert ours.status == "ok" and ours.max_relative_error <= 5e-2
        assert all(m.median > 0 for m in row["metrics"])
    assert next(c for c in rows["dense"]["checks"] if c.provider == "torch").status == "ok"
    assert next(p.device.type for p in dense.parameters()) == "cpu"  # timed on a copy


def test_a_cuda_graph_needs_a_gpu_and_a_plain_mlp(digits):
    with pytest.raises(ProviderUnavailable, match="CUDA graphs replay work captured on a CUDA device; this model runs on cpu"):
        MODEL_PROVIDERS["cuda_graph"].build(net(digits), "threshold", 1)
    with pytest.raises(ProviderUnavailable, match="per-example block masks"):
        MODEL_PROVIDERS["cuda_graph"].build(net(digits, "reinforce"), "threshold", 1)


@pytest.mark.gpu
def test_a_cuda_graph_replays_the_nets_logits_for_each_batch_size(digits):
    model = net(digits).to(device="cuda", dtype=torch.bfloat16)
    prepare, run = MODEL_PROVIDERS["cuda_graph"].build(model, "threshold", 1)
    with torch.no_grad():
        for batch in (1, 7, 7, 64):  # a shape seen before reuses its graph, with the new input
            x = torch.randn(batch, digits.n_features, device="cuda", dtype=torch.bfloat16)
            torch.testing.assert_close(run(prepare(x)).clone(), as_sequential(model)(x))
