"""The paper's training options (bengioe/condnet, policyDropout.py): per-layer target densities and
regularizer weights, tanh, L2 on the policies, per-layer policy learning-rate multipliers. Each changes
what it should, and nothing else."""

from __future__ import annotations

import pytest
import torch

from condcore.data import load_dataset
from condcore.models import CondNet, CondNetConfig
from condcore.policies.reinforce import Baseline
from condcore.train import TrainConfig, evaluate, step_loss, train


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def net(digits, **options) -> CondNet:
    torch.manual_seed(0)
    return CondNet(CondNetConfig(digits.n_features, digits.n_classes, **{"hidden": [64, 64], "block_size": 8, **options}))


def test_each_layer_trains_toward_its_own_tau(digits):
    """Layer 0 at 1/2 and layer 1 at 1/8, as the paper's 1/4, 1/32, 1/32: the realized densities follow
    each layer's tau, not one shared value; the headline tau is their block-weighted mean."""
    model = net(digits, layer_taus=[0.5, 0.125])
    assert model.config.tau == pytest.approx(0.3125) and [g.tau for g in model.gates] == [0.5, 0.125]
    result = train(model, digits, TrainConfig(epochs=6, lambda_s=[20.0, 20.0], seed=0), progress=False)
    density = evaluate(result.model, digits.test, "sample").density
    assert density[0] == pytest.approx(0.5, abs=0.12) and density[1] == pytest.approx(0.125, abs=0.08), density
    # saved and loaded as configured
    again = CondNetConfig(**result.model.config.to_dict())
    assert again.taus() == [0.5, 0.125] and again.tau == pytest.approx(0.3125)


def test_per_layer_regularizer_weights_act_on_their_own_layer(digits):
    """lambda_s = [w, 0] is layer 0's sparsity terms alone: the loss is the cross-entropy plus exactly
    that layer's terms, recomputed by hand from the same sampled probabilities."""
    from condcore.policies.regularizers import block_balance, example_balance, variance_bonus

    model = net(digits, layer_taus=[0.5, 0.25])
    x, y = digits.train.x[:32], digits.train.y[:32]
    for lambdas in ([3.0, 0.0], [0.0, 3.0]):
        torch.manual_seed(1)
        cfg = TrainConfig(lambda_s=lambdas, lambda_v=[0.0, 0.5])
        loss, cost = step_loss(model, x, y, cfg, Baseline("none"))
        torch.manual_seed(1)
        trace = model(x, mode="train")
        expected = torch.nn.functional.cross_entropy(trace.logits, y)
        for layer, gate_out in enumerate(trace.gates):
            tau, p = model.gates[layer].tau, gate_out.prob
            expected = expected + lambdas[layer] * (block_balance(p, tau) + example_balance(p, tau))
            expected = expected + [0.0, 0.5][layer] * variance_bonus(p)
        surrogate = (cost.detach() * torch.stack([g.log_prob for g in trace.gates]).sum(0)).mean()
        assert loss.item() == pytest.approx((expected + surrogate).item(), rel=1e-5)


def test_tanh_layers_compute_tanh_and_keep_dropped_blocks_zero(digits):
    """A tanh CondNet's inference equals tanh of the dense product times the mask, layer by layer (the
    native fused forward, which applies relu, is not used for it)."""
    model = net(digits, activation="tanh", policy="reinforce", tau=0.5).eval()
    x = digits.test.x[:16]
    with torch.no_grad():
        trace = model(x, mode="threshold")
        h = x
        for linear, mask in zip(model.hidden, trace.masks):
            h = torch.tanh(linear(h)) * mask.repeat_interleave(8, dim=1)
        expected = model.output(h)
    assert torch.allclose(trace.logits, expected, atol=1e-5)
    relu = net(digits, activation="relu", policy="reinforce", tau=0.5).eval()
    with torch.no_grad():
        assert not torch.allclose(relu(x, mode="threshold").logits, expected, atol=1e-3)
    result = train(model, digits, TrainConfig(epochs=3, seed=0), progress=False)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_tanh_dense_net_runs_as_a_plain_mlp_with_tanh(digits):
    from bench.core.model_providers import as_sequential

    model = net(digits, activation="tanh", policy="dense", tau=1.0).eval()
    x = digits.test.x[:8]
    with torch.no_grad():
        assert torch.allclose(as_sequential(model)(x), model(x).logits, atol=1e-5)


def test_policy_l2_shrinks_the_policies_and_only_them(digits):
    def trained(policy_l2: float) -> CondNet:
        return train(net(digits), digits, TrainConfig(epochs=2, seed=0, policy_l2=policy_l2, optimizer="sgd", lr=0.05, policy_lr_mult=1.0,
                                                      momentum=0.0), progress=False).model

    plain, decayed = trained(0.0), trained(1.0)
    norm = lambda m: sum(p.norm() ** 2 for p in m.policy_parameters()).item()  # noqa: E731
    assert norm(decayed) < 0.5 * norm(plain)
    # the network's weights are not decayed by it: both runs start equal and differ only through the masks
    assert sum(p.norm() for p in decayed.network_parameters()) > 0.5 * sum(p.norm() for p in plain.network_parameters())


def test_per_layer_policy_learning_rate_multipliers(digits):
    """A multiplier of 0 freezes that layer's policy; the other layer's policy learns."""
    model = net(digits)
    before = [p.detach().clone() for p in model.policy_parameters()]
    train(model, digits, TrainConfig(epochs=1, seed=0, policy_lr_mult=[0.0, 1.0]), progress=False)
    after = list(model.policy_parameters())
    first, second = model.policies[0], model.policies[1]
    n_first = len(list(first.parameters()))
    assert all(torch.equal(b, a) for b, a in zip(before[:n_first], after[:n_first]))
    assert not all(torch.equal(b, a) for b, a in zip(before[n_first:], after[n_first:]))
    assert second.weight.requires_grad


@pytest.mark.parametrize("config, message", [
    ({"layer_taus": [0.5]}, "layer_taus has 1 values for 2 hidden layers"),
    ({"layer_taus": [0.5, 0.0]}, "tau must be in (0, 1]"),
    ({"activation": "gelu"}, "unknown activation 'gelu'"),
])
def test_bad_model_options_are_refused(digits, config, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        CondNet(CondNetConfig(digits.n_features, digits.n_classes, hidden=[64, 64], block_size=8, **config))


@pytest.mark.parametrize("options, message", [
    ({"lambda_s": [1.0, 2.0, 3.0]}, "lambda_s has 3 values for 2 hidden layers"),
    ({"policy_lr_mult": [1.0]}, "policy_lr_mult has 1 values for 2 hidden layers"),
    ({"lambda_v": [1.0, float("nan")]}, "lambda_v must be a non-negative number"),
    ({"policy_l2": -1.0}, "policy_l2 must be a non-negative number"),
    ({"lr": float("inf")}, "lr must be a positive number"),
])
def test_bad_training_options_are_refused(digits, options, message):
    with pytest.raises(ValueError, match=message):
        train(net(digits), digits, TrainConfig(epochs=1, **options), progress=False)


def test_a_suites_recipe_reaches_the_trained_model_and_names_it(tmp_path, digits):
    """The options in a suite's models section train the model they say, under a name of their own (a
    checkpoint of the default recipe is never reused for them), and the defaults name nothing."""
    import yaml

    from bench.measure.train import train_or_reuse
    from bench.plan.cases import model_cases
    from bench.plan.suite import parse_suite

    models = {"dataset": "digits", "hidden": [32, 32], "block_size": 16, "epochs": 1, "policies": ["reinforce"],
              "taus": [[0.5, 0.25]]}
    plain = model_cases(parse_suite(yaml.safe_dump({"name": "t", "models": models}), "t.yaml"))[0]
    recipe = {"activation": "tanh", "optimizer": "sgd", "momentum": 0.5, "lambda_s": [1.0, 2.0], "policy_l2": 0.1,
              "policy_lr_mult": [0.01, 0.5]}
    (case,) = model_cases(parse_suite(yaml.safe_dump({"name": "t", "models": {**models, **recipe}}), "t.yaml"))
    assert plain.name.endswith("-auto-s0") and "tau0.5,0.25" in plain.name
    assert case.name.endswith("-auto-tanh-sgd-mom0.5-ls1,2-plr0.01,0.5-pl20.1-s0") and case.tau == pytest.approx(0.375)
    model, metrics = train_or_reuse(case, digits, tmp_path, progress=False)
    assert model.config.activation == "tanh" and model.config.layer_taus == [0.5, 0.25]
    train_config = metrics["train"]
    assert (train_config["optimizer"], train_config["momentum"], train_config["lambda_s"], train_config["policy_l2"],
            train_config["policy_lr_mult"]) == ("sgd", 0.5, [1.0, 2.0], 0.1, [0.01, 0.5])


def test_summed_loss_is_the_mean_times_the_batch_for_the_cross_entropy_and_the_surrogate(digits):
    """loss_reduction "sum" (the paper's `cost = T.sum(loss)`): with the regularizers off, the objective
    and every network gradient are exactly B times the mean's; the REINFORCE surrogate sums too."""
    model = net(digits, layer_taus=[0.5, 0.25])
    x, y = digits.train.x[:40], digits.train.y[:40]

    def objective(reduction: str) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        torch.manual_seed(3)
        loss, _ = step_loss(model, x, y, TrainConfig(lambda_s=0.0, lambda_v=0.0, loss_reduction=reduction),
                            Baseline("none"))
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    mean, mean_grads = objective("mean")
    total, sum_grads = objective("sum")
    assert total == pytest.approx(40 * mean, rel=1e-5)
    assert len(sum_grads) == len(mean_grads) > 0
    for g_sum, g_mean in zip(sum_grads, mean_grads):
        torch.testing.assert_close(g_sum, 40 * g_mean, rtol=1e-4, atol=1e-6)


def test_reinforce_surrogate_reduction():
    from condcore.policies.reinforce import reinforce_loss

    cost, log_prob = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([-0.5, -1.0, -2.0])
    mean = reinforce_loss(cost, log_prob, Baseline("none"))
    total = reinforce_loss(cost, log_prob, Baseline("none"), "sum")
    assert total.item() == pytest.approx(3 * mean.item()) == pytest.approx(-(0.5 + 2.0 + 8.0))


def test_l2_is_weight_decay_on_the_network_alone(digits):
    """l2 (the paper's L2reg, as weight decay) decays the network's weights and leaves the policies' to
    policy_l2."""
    from condcore.train import _optimizer

    model = net(digits)
    optimizer_groups = _optimizer(model, TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1, l2=0.5)).param_groups
    network = {id(p) for p in model.network_parameters()}
    decays = {id(p): group["weight_decay"] for group in optimizer_groups for p in group["params"]}
    assert all(decays[i] == 0.5 for i in network)
    assert all(decays[id(p)] == 0.0 for p in model.policy_parameters())
    with pytest.raises(ValueError, match="l2 must be a non-negative number"):
        TrainConfig(l2=-0.1).validate()
    with pytest.raises(ValueError, match="unknown loss reduction 'median'"):
        TrainConfig(loss_reduction="median").validate()
