from __future__ import annotations

import pytest
import torch

from condcore.models import CondNet, CondNetConfig
from condcore.policies import make_gate
from condcore.policies.regularizers import block_balance, example_balance, variance_bonus
from condcore.policies.reinforce import Baseline, reinforce_loss


def test_regularizers_match_their_definitions():
    p = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.7, 0.5]])
    tau = 0.25
    assert block_balance(p, tau).item() == pytest.approx((0.2 - tau) ** 2 + (0.8 - tau) ** 2 + (0.5 - tau) ** 2)
    assert example_balance(p, tau).item() == pytest.approx(((0.5 - tau) ** 2 + (0.5 - tau) ** 2) / 2)
    assert variance_bonus(p).item() == pytest.approx(-(0.01 + 0.01 + 0.0))


def test_reinforce_gradient_favours_cheap_masks():
    """Two examples, same probabilities; the cheaper example's mask must become more likely."""
    logits = torch.zeros(2, 4, requires_grad=True)
    gate = make_gate("reinforce", 0.5)
    out = gate(logits, 2, 4, "train")
    cost = torch.tensor([0.0, 1.0])
    reinforce_loss(cost, out.log_prob, Baseline("none")).backward()
    cheap_mask = out.mask[0].float() * 2 - 1  # +1 where the cheap example ran the block
    assert (logits.grad[0] * cheap_mask <= 0).all()  # descent raises the cheap mask's log-probability
    assert (logits.grad[0] == 0).all()  # zero cost: no push at all without a baseline


def test_baselines():
    cost = torch.tensor([1.0, 3.0])
    assert Baseline("none")(cost).item() == 0.0
    assert Baseline("batch_min")(cost).item() == 1.0
    ma = Baseline("moving_average")
    assert ma(cost).item() == pytest.approx(2.0)
    assert ma(torch.tensor([4.0, 4.0])).item() == pytest.approx(0.9 * 2.0 + 0.1 * 4.0)
    with pytest.raises(ValueError, match="unknown REINFORCE baseline"):
        Baseline("median")


def test_reinforce_probabilities_are_clipped():
    gate = make_gate("reinforce", 0.25, p_min=0.01, p_max=0.99)
    out = gate(torch.tensor([[-100.0, 100.0]]), 1, 2, "sample")  # threshold compares logits: no prob
    assert out.prob.min() >= 0.01 and out.prob.max() <= 0.99


@pytest.mark.parametrize("policy,tau", [("reinforce", 0.1), ("reinforce", 0.5), ("straight-through", 0.25)])
def test_a_learned_policy_starts_at_its_target_density(policy, tau):
    """The policy's bias starts where the gate keeps a block with probability tau (from 0.5, the tau = 0.1
    policies first collapsed to no block at all)."""
    model = CondNet(CondNetConfig(64, 10, hidden=[128, 128], block_size=16, policy=policy, tau=tau))
    for gate, policy_layer in zip(model.gates, model.policies):
        p = gate(policy_layer.bias.detach()[None], 1, policy_layer.out_features, "sample").prob
        assert torch.allclose(p, torch.full_like(p, tau), atol=1e-6)


@pytest.mark.parametrize("policy", ["dense", "random", "topk"])
def test_gates_without_a_density_logit_keep_the_default_bias(policy):
    assert make_gate(policy, 0.25).logit_of(0.25) is None


@pytest.mark.parametrize("policy", ["reinforce", "straight-through", "topk"])
def test_inference_modes(policy):
    gate = make_gate(policy, 0.25)
    logits = torch.randn(8, 16)
    for mode in ("sample", "threshold", "topk"):
        out = gate(logits, 8, 16, mode)
        assert out.mask.shape == (8, 16) and out.mask.dtype == torch.bool
    assert (gate(logits, 8, 16, "topk").mask.sum(dim=1) == 4).all()
    with pytest.raises(ValueError, match="unknown gate mode"):
        gate(logits, 8, 16, "sideways")


def test_straight_through_and_topk_pass_gradients_to_the_policy():
    for policy in ("straight-through", "topk"):
        logits = torch.randn(4, 8, requires_grad=True)
        out = make_gate(policy, 0.5)(logits, 4, 8, "train")
        torch.testing.assert_close(out.multiplier.detach(), out.mask.float())  # value of the mask, up to rounding
        (out.multiplier * torch.randn(4, 8)).sum().backward()
        assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_a_router_whose_logits_fall_below_fp32s_sigmoid_stays_finite():
    """Found training on mnist5k: logits below -88 round p to 0, and p / p.detach() was 0 / 0: the
    top-k routers at tau 0.25 and 0.5 trained to NaN in their first epoch. The multiplier keeps its
    value 1 and its gradient (1 - p) there."""
    logits = torch.tensor([[-120.0, -100.0, -95.0, -200.0], [3.0, -1.0, 0.5, -150.0]], requires_grad=True)
    out = make_gate("topk", 0.5)(logits, 2, 4, "train")
    assert torch.equal(out.multiplier.detach(), out.mask.float())
    out.multiplier.sum().backward()
    expected = out.mask.float() * (1 - torch.sigmoid(logits.detach()))
    torch.testing.assert_close(logits.grad, expected)


def test_fixed_gates():
    assert make_gate("dense", 0.3)(None, 5, 4, "threshold").mask.all()
    mask = make_gate("random", 0.25)(None, 4000, 8, "threshold").mask
    assert abs(mask.float().mean().item() - 0.25) < 0.02
    with pytest.raises(ValueError, match="unknown policy"):
        make_gate("oracle", 0.5)
    with pytest.raises(ValueError, match="tau"):
        make_gate("reinforce", 0.0)


@pytest.mark.parametrize("p_min,p_max", [(0.01, 0.99), (0.2, 0.9), (0.0, 1.0), (0.55, 0.9), (0.05, 0.45)])
def test_threshold_masks_compare_the_logit_as_p_over_one_half(p_min, p_max):
    """The threshold mode compares the logits with one constant; it keeps exactly the blocks with
    p > 0.5, away from the ~1e-6 band where fp32 rounds p to 0.5 itself."""
    from condcore.policies.base import inference_mask
    from condcore.policies.reinforce import ReinforceGate
    from condcore.policies.straight_through import StraightThroughGate

    logits = torch.randn(512, 16, generator=torch.Generator().manual_seed(0)) * 4
    gate = ReinforceGate(0.25, p_min=p_min, p_max=p_max)
    far = (logits - gate.threshold_logit).abs() > 1e-5
    want = inference_mask(gate.probabilities(logits), "threshold", 0.25)
    got = gate(logits, 512, 16, "threshold").mask
    assert got.dtype == torch.bool and torch.equal(got[far], want[far])
    if p_min >= 0.5 or p_max <= 0.5:  # p never crosses 0.5: all on, or all off
        assert got.all() if p_min >= 0.5 else not got.any()
    st = StraightThroughGate(0.25)
    assert torch.equal(st(logits, 512, 16, "threshold").mask, inference_mask(torch.sigmoid(logits), "threshold", 0.25))
