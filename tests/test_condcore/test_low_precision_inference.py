"""A CondNet's inference in 16 bits: the forward on given masks (the spec of a 16-bit forward is the float64
network on the masks that forward chose), and check_inference holding a bf16/fp16 model to it."""

from __future__ import annotations

import copy

import pytest
import torch

import condcore.models.condnet as condnet_module
from condcore.models import CondNet, CondNetConfig
from condcore.problems import relative_error_to
from condcore.speed import check_inference, dense_twin, low_precision_spec


def net(policy: str = "reinforce", tau: float = 0.25, activation: str = "relu") -> CondNet:
    torch.manual_seed(0)
    model = CondNet(CondNetConfig(24, 5, hidden=[64, 48], block_size=16, policy=policy, tau=tau, activation=activation))
    for gate_policy in model.policies:
        # untrained, every policy starts at logit(tau) for every block: all off at the threshold; spread
        # them, so that some blocks of each example run and others do not
        if isinstance(gate_policy, torch.nn.Linear):
            torch.nn.init.normal_(gate_policy.bias, std=1.5)
    return model.eval()


@pytest.mark.parametrize("mode", ["threshold", "sample"])
def test_the_gates_own_masks_given_back_give_the_same_forward(mode):
    model, x = net(), torch.randn(9, 24)
    torch.manual_seed(1)
    trace = model(x, mode=mode, backend="torch")
    forced = model(x, mode=mode, backend="torch", masks=trace.masks)
    assert all(torch.equal(a, b) for a, b in zip(forced.masks, trace.masks))
    torch.testing.assert_close(forced.logits, trace.logits, rtol=0, atol=0)


def test_given_masks_are_what_the_layers_run():
    model, x = net(), torch.randn(5, 24)
    masks = [torch.zeros(5, 4, dtype=torch.bool), torch.zeros(5, 3, dtype=torch.bool)]
    masks[0][:, 1] = True
    masks[1][2, 2] = True
    got = model(x, mode="threshold", backend="reference", masks=masks)
    h = x
    for linear, mask in zip(model.hidden, masks):
        h = torch.relu(linear(h)) * mask.repeat_interleave(16, dim=1)
    torch.testing.assert_close(got.logits, model.output(h))
    assert [m.tolist() for m in got.masks] == [m.tolist() for m in masks]


@pytest.mark.parametrize(("masks", "message"), [
    (lambda: [torch.ones(5, 4, dtype=torch.bool)], "1 given for 2 hidden layers"),
    (lambda: [torch.ones(5, 4, dtype=torch.bool), torch.ones(5, 4, dtype=torch.bool)], r"masks\[1\] must be a bool tensor of shape \(5, 3\)"),
    (lambda: [torch.ones(5, 4), torch.ones(5, 3)], r"masks\[0\] must be a bool tensor"),
])
def test_given_masks_that_do_not_fit_are_refused(masks, message):
    with pytest.raises(ValueError, match=message):
        net()(torch.randn(5, 24), mode="threshold", masks=masks())


def test_given_masks_cannot_turn_off_an_always_on_layer_nor_drive_training():
    dense = net("dense", 1.0)
    off = [torch.ones(5, 4, dtype=torch.bool), torch.zeros(5, 3, dtype=torch.bool)]
    with pytest.raises(ValueError, match="always on"):
        dense(torch.randn(5, 24), mode="threshold", masks=off)
    with pytest.raises(ValueError, match="for inference"):
        net()(torch.randn(5, 24), mode="train", masks=[torch.ones(5, 4, dtype=torch.bool)] * 2)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize(("policy", "tau", "mode"), [("reinforce", 0.25, "threshold"), ("random", 0.5, "sample"),
                                                     ("dense", 1.0, "threshold")])
def test_a_16_bit_model_passes_against_the_float64_network_on_its_own_masks(dtype, policy, tau, mode):
    model = net(policy, tau).to(dtype)
    batches = [torch.randn(b, 24).to(dtype) for b in (1, 17)]
    specs = check_inference(model, batches, mode)
    assert [tuple(s.shape) for s in specs] == [(1, 5), (17, 5)] and {s.dtype for s in specs} == {torch.float64}
    torch.manual_seed(0)
    assert any(0 < m.float().mean() < 1 for m in model(batches[1], mode=mode).masks) or policy == "dense"
    wide = low_precision_spec(model)
    assert next(wide.parameters()).dtype == torch.float64 and low_precision_spec(net()) is None
    torch.manual_seed(0)
    trace = model(batches[1], mode=mode)
    spec = wide(batches[1].double(), mode=mode, backend="reference", masks=trace.masks)
    assert 0 < relative_error_to(trace.logits, spec.logits) <= 5e-2  # rounded, not exact, and close


def test_a_16_bit_forward_whose_kernel_is_wrong_fails(monkeypatch):
    model, x = net().to(torch.bfloat16), torch.randn(17, 24).to(torch.bfloat16)
    real = condnet_module.block_sparse_linear

    def off_by_a_tenth(*args, backend: str = "auto", **kw):
        y = real(*args, backend=backend, **kw)
        return y if backend == "reference" else 1.1 * y

    monkeypatch.setattr(condnet_module, "block_sparse_linear", off_by_a_tenth)
    with pytest.raises(ValueError, match=r"float64 reference on the same masks by .* \(tolerance 0.05 in bfloat16\) at batch 17"):
        check_inference(model, [x], "threshold")


def test_a_nan_logit_fails_the_16_bit_check():
    assert relative_error_to(torch.tensor([[float("nan"), 1.0]]), torch.tensor([[1.0, 1.0]])) != 0.0
    assert not relative_error_to(torch.tensor([[float("nan"), 1.0]]), torch.tensor([[1.0, 1.0]])) <= 1.0


def test_the_dense_twin_keeps_the_models_dtype():
    model = copy.deepcopy(net()).to(torch.bfloat16)
    twin = dense_twin(model)
    assert {p.dtype for p in twin.parameters()} == {torch.bfloat16}
    assert torch.equal(twin.hidden[0].weight, model.hidden[0].weight)
