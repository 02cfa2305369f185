"""The whole-CondNet native forward: its packing, its kernel against the float64 masked reference, and
when CondNet.forward takes it (and when it must not)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from condcore.models import CondNet, CondNetConfig
from condcore.ops import frozen_weights
from condcore.ops.cpu import native as cpu_native
from condcore.ops.cpu import pairs as condnet_native
from condcore.ops.cpu.pairs import PackedNetwork, pack_map

MARGIN = 1e-4  # a gate logit this close to its threshold may fall either way in fp32


@pytest.fixture(autouse=True)
def built():
    assert condnet_native.available(), cpu_native.status()


@pytest.mark.parametrize("in_block, out_block", [(37, 16), (16, 24), (8, 5), (128, 128)])
def test_packed_map_computes_the_map(in_block, out_block):
    torch.manual_seed(0)
    weight, bias = torch.randn(3 * out_block, 2 * in_block), torch.randn(3 * out_block)
    packed = pack_map(weight, bias, in_block, out_block)
    chunks = packed.weight.shape[2]
    assert packed.weight.shape == (3, 2, chunks, in_block, condnet_native.LANES)
    assert chunks * condnet_native.LANES >= out_block > (chunks - 1) * condnet_native.LANES
    # Unpacked: out block j's width-padded columns are W[j] (zeros past the block), rows the inputs.
    unpacked = packed.weight.permute(0, 2, 4, 1, 3).reshape(3, chunks * condnet_native.LANES, 2 * in_block)
    assert torch.equal(unpacked[:, :out_block].reshape(-1, 2 * in_block), weight)
    assert not unpacked[:, out_block:].any()
    assert torch.equal(packed.bias[:, :out_block].reshape(-1), bias) and not packed.bias[:, out_block:].any()


def test_a_weight_that_does_not_cut_into_blocks_is_refused():
    with pytest.raises(ValueError, match="does not cut"):
        pack_map(torch.randn(30, 16), torch.randn(30), 16, 16)


def random_network(features: int, hidden: list[int], k: int, classes: int, thresholds: list[float], seed: int,
                   budgets: list[int] | None = None):
    """Weights (float64 copies for the reference) and the packed network."""
    g = torch.Generator().manual_seed(seed)
    widths = [features, *hidden]
    maps = [(torch.randn(o, i, generator=g) / math.sqrt(i), torch.randn(o, generator=g)) for i, o in zip(widths, hidden)]
    policies = [(torch.randn(o // k, i, generator=g) / math.sqrt(i), torch.randn(o // k, generator=g))
                for i, o in zip(widths, hidden)]
    output = (torch.randn(classes, widths[-1], generator=g) / math.sqrt(widths[-1]), torch.randn(classes, generator=g))
    blocks = [features, *[k] * len(hidden)]
    network = PackedNetwork([pack_map(w, b, blk, k) for (w, b), blk in zip(maps, blocks)],
                            [pack_map(u, c, blk, u.shape[0]) for (u, c), blk in zip(policies, blocks)],
                            thresholds, budgets or [0] * len(hidden), pack_map(*output, blocks[-1], classes), classes)
    return SimpleNamespace(maps=maps, policies=policies, output=output, k=k, network=network)


def reference(net, x: torch.Tensor, masks: list[torch.Tensor]):
    """float64: the gates' logits on the way, and the logits of the net run with the given masks."""
    h, scores = x.double(), []
    for (w, b), (u, c), mask in zip(net.maps, net.policies, masks):
        scores.append(h @ u.double().T + c.double())
        h = torch.relu(h @ w.double().T + b.double()) * mask.double().repeat_interleave(net.k, dim=1)
    w, b = net.output
    return h @ w.double().T + b.double(), scores


def poisoned_run(net, x: torch.Tensor, monkeypatch):
    """The kernel's results after a run of the same shapes that fills its reused workspace with huge
    values (every block on, x at 1e30), into outputs that start as NaN / True: anything read before it
    is written, or left unwritten, shows."""
    loud = PackedNetwork(net.network.layers, net.network.gates, [-math.inf] * len(net.maps), [0] * len(net.maps),
                         net.network.output, net.network.n_classes)
    condnet_native.condnet_forward(torch.full_like(x, 1e30), loud)
    empty = torch.empty

    def poisoned(*shape, dtype=torch.float32, **kwargs):
        return empty(*shape, dtype=dtype, **kwargs).fill_(True if dtype == torch.bool else math.nan)

    monkeypatch.setattr(condnet_native.torch, "empty", poisoned)
    try:
        return condnet_native.condnet_forward(x, net.network)
    finally:
        monkeypatch.setattr(condnet_native.torch, "empty", empty)


def check(net, x: torch.Tensor, monkeypatch) -> list[torch.Tensor]:
    logits, masks = poisoned_run(net, x, monkeypatch)
    expected, scores = reference(net, x, masks)
    for mask, score, threshold, budget in zip(masks, scores, net.network.thresholds, net.network.budgets):
        if budget:  # the budget blocks of highest logit (the rows' logits are far apart, see the test)
            assert torch.equal(mask, torch.zeros_like(mask).scatter_(1, score.topk(budget, dim=1).indices, True))
            continue
        decided = (score - threshold).abs() > MARGIN
        assert torch.equal(mask[decided], (score > threshold)[decided])
    torch.testing.assert_close(logits.double(), expected, rtol=1e-4, atol=1e-4)
    return masks


@pytest.mark.parametrize("batch", [1, 5, 33])
@pytest.mark.parametrize("features, hidden, k, classes", [
    (37, [48, 80], 16, 10),  # x's width no multiple of anything
    (64, [2 * 24, 3 * 24, 24], 24, 17),  # blocks narrower than... not a multiple of 16 wide
    (20, [128 * 3], 128, 3),  # one hidden layer, the models' block size
])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_kernel_matches_the_float64_masked_reference(batch, features, hidden, k, classes, threads, monkeypatch):
    torch.set_num_threads(threads)
    try:
        net = random_network(features, hidden, k, classes, [0.3, -0.2, 0.5][: len(hidden)], seed=batch + threads)
        masks = check(net, torch.randn(batch, features), monkeypatch)
        assert all(m.shape == (batch, w // k) for m, w in zip(masks, hidden))
    finally:
        torch.set_num_threads(2)


@pytest.mark.parametrize("threshold, expected", [(math.inf, False), (-math.inf, True)])
def test_all_off_and_all_on(threshold, expected, monkeypatch):
    net = random_network(30, [64, 64], 16, 7, [threshold, threshold], seed=1)
    masks = check(net, torch.randn(9, 30), monkeypatch)
    assert all(bool(m.all()) == expected and bool(m.any()) == expected for m in masks)


def test_one_active_block_per_example(monkeypatch):
    """Thresholds between each row's largest and second-largest logit: exactly one block per row."""
    net = random_network(24, [5 * 16], 16, 4, [0.0], seed=2)
    x = torch.randn(6, 24)
    u, c = net.policies[0]
    scores = (x @ u.T + c).sort(dim=1, descending=True).values
    gap = (scores[:, 0] - scores[:, 1]).argmax()  # a row whose two best logits are well apart
    x = x[gap].expand(6, 24).contiguous()
    net.network.thresholds[0] = float((scores[gap, 0] + scores[gap, 1]) / 2)
    net.network.__dict__.pop("arguments", None)  # thresholds changed after it was made
    masks = check(net, x, monkeypatch)
    assert masks[0].sum(dim=1).tolist() == [1] * 6


@pytest.mark.parametrize("budget", [1, 3, 5])
def test_top_k_gates_run_their_budget(budget, monkeypatch):
    net = random_network(40, [5 * 16, 5 * 16], 16, 6, [0.0, 0.0], seed=budget, budgets=[budget, 2])
    masks = check(net, torch.randn(21, 40), monkeypatch)
    assert masks[0].sum(dim=1).tolist() == [budget] * 21 and masks[1].sum(dim=1).tolist() == [2] * 21


def test_bad_x_is_refused():
    net = random_network(8, [32], 16, 3, [0.0], seed=3)
    for x in (torch.randn(2, 8, dtype=torch.float64), torch.randn(8, 2).T, torch.randn(2, 2, 8)):
        with pytest.raises(ValueError, match="contiguous 2-D fp32"):
            condnet_native.condnet_forward(x, net.network)


# --- CondNet.forward: when it takes the native forward, and that it agrees with the layers one by one


def condnet(policy: str, features: int = 37, hidden=(96, 64), k: int = 32, seed: int = 0) -> CondNet:
    torch.manual_seed(seed)
    model = CondNet(CondNetConfig(features, 11, hidden=list(hidden), block_size=k, policy=policy, tau=0.5)).eval()
    for policy_map in model.policies:  # logits spread well away from the threshold: few near-ties
        if isinstance(policy_map, torch.nn.Linear):
            torch.nn.init.normal_(policy_map.weight, std=1.0)
            torch.nn.init.normal_(policy_map.bias, std=1.0)
    return model


@pytest.fixture
def native_calls(monkeypatch):
    calls = []
    forward = condnet_native.condnet_forward

    def counted(*args):
        calls.append(args)
        return forward(*args)

    monkeypatch.setattr(condnet_native, "condnet_forward", counted)
    return calls


@pytest.mark.parametrize("policy, mode", [("reinforce", "threshold"), ("straight-through", "threshold"),
                                          ("topk", "topk"), ("topk", "threshold")])
@pytest.mark.parametrize("batch", [1, 7, 40])
def test_condnet_forward_takes_it_and_agrees_with_the_layers(policy, mode, batch, native_calls):
    model = condnet(policy)
    x = torch.randn(batch, 37)
    with torch.no_grad(), frozen_weights():
        fast = model(x, mode=mode)
        slow = model(x, mode=mode, backend="torch")
    assert len(native_calls) == 1
    for a, b in zip(fast.masks, slow.masks):
        assert torch.equal(a, b)
    torch.testing.assert_close(fast.logits, slow.logits, rtol=1e-4, atol=1e-4)


def test_non_contiguous_x(native_calls):
    model = condnet("reinforce")
    x = torch.randn(37, 12).T
    with torch.no_grad(), frozen_weights():
        torch.testing.assert_close(model(x).logits, model(x.contiguous(), backend="torch").logits, rtol=1e-4, atol=1e-4)
    assert len(native_calls) == 1


@pytest.mark.parametrize("case", ["not frozen", "training", "grad", "sample", "reinforce topk", "random", "fp64",
                                  "native off", "inf weight"])
def test_it_stays_out_where_it_does_not_apply(case, native_calls, monkeypatch):
    model, x = condnet("random" if case == "random" else "reinforce"), torch.randn(4, 37)
    mode = {"sample": "sample", "reinforce topk": "topk"}.get(case, "threshold")
    if case == "fp64":
        model, x = model.double(), x.double()
    if case == "training":
        model.train()
    if case == "native off":
        monkeypatch.setattr(cpu_native, "_load", lambda: None)
    if case == "inf weight":  # the layers' 0 * inf = NaN in a dropped block, which the kernel skips
        with torch.no_grad():
            model.hidden[1].weight[0, 0] = math.inf
    with torch.set_grad_enabled(case == "grad"), frozen_weights() if case != "not frozen" else torch.no_grad():
        trace = model(x, mode=mode)
    assert not native_calls
    assert trace.logits.shape == (4, 11)


def test_a_weight_changed_in_place_is_packed_again(native_calls):
    model = condnet("reinforce")
    x = torch.randn(5, 37)
    with torch.no_grad(), frozen_weights():
        model(x)
        model.output.bias.add_(1.0)  # bumps its version: the cheap guard
        torch.testing.assert_close(model(x).logits, model(x, backend="torch").logits, rtol=1e-4, atol=1e-4)
