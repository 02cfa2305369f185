"""Suites: the shipped ones parse, mistakes are one line naming the place, cases expand and shard."""

from __future__ import annotations

import pytest
import torch
from support.paths import REPO

from bench.core.errors import UserError
from bench.plan.cases import check_runnable, kernel_cases, model_cases, parse_shard, shard
from bench.plan.suite import load_suite, parse_suite

LAYER = "shape: [{in_features: 64, out_features: 64}]"


def sweep(**fields) -> str:
    body = {"name": "s", "batch": "[4]", "shape": "[{in_features: 64, out_features: 64}]", "block_size": "[16]",
            "density": "[0.5]", **fields}
    return "name: t\nkernels:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in body.items())


SHIPPED = sorted(path.stem for path in (REPO / "suites").glob("*.yaml"))


def test_the_shipped_suites_are_these():
    assert SHIPPED == ["ci", "cpu", "gpu", "kernels-cpu", "kernels-cuda", "paper"]


@pytest.mark.parametrize("name", [name for name in SHIPPED if name != "paper"])  # paper: models only, its own test
def test_shipped_suites_parse_and_expand(name):
    suite = load_suite(REPO / "suites" / f"{name}.yaml")
    cases = kernel_cases(suite)
    assert cases and len({c.case_id for c in cases}) == len(cases)
    # every shipped suite's report shows peers beside ours
    assert any(sweep.peers for sweep in suite.kernels)


def test_cpu_suite_shape():
    suite = load_suite(REPO / "suites" / "cpu.yaml")
    # seed 0: the dense frontier (seven widths, 2048 being the CondNets' twin), four learners x three taus;
    # seeds 1 and 2: the frontier, reinforce and top-k again
    assert [len([m for m in model_cases(suite) if m.seed == seed]) for seed in (0, 1, 2)] == [19, 13, 13]
    dense = [m for m in model_cases(suite) if m.policy == "dense"]
    assert sorted({m.hidden for m in dense}) == [(w, w) for w in (32, 64, 128, 256, 512, 1024, 2048)]
    trained = [c for c in kernel_cases(suite) if c.mask_source == "trained"]
    assert {c.model for c in trained} == {m.name for m in model_cases(suite) if m.policy == "reinforce" and m.seed == 0}
    assert not any(c.batch == 4 and c.mask_source == "clustered" for c in kernel_cases(suite))  # excluded


@pytest.mark.parametrize(
    "text,message",
    [
        ("name: [unclosed", "bad YAML"),
        ("- just\n- a list", "a suite is a YAML mapping"),
        ("name: t\nwhatever: 1", "(top level): unknown key `whatever`"),
        (sweep(density="[0.5, 1.5]"), "kernels[0].density: density must be in (0, 1], got 1.5"),
        (sweep(density="[0]"), "density must be in (0, 1]"),
        (sweep(batch="[0]"), "kernels[0].batch[0]: Input should be greater than 0"),
        (sweep(block_size="[48]"), "block_size 48 does not divide layer 64x64"),
        (sweep(device="[gpu]"), "kernels[0].device[0]: Input should be 'cpu' or 'cuda'"),
        (sweep(dtype="[float8]"), "kernels[0].dtype[0]"),
        (sweep(exclude="[{colour: red}]"), "unknown key(s) ['colour']"),
        (sweep(mask_source="[trained]"), "has no models section"),
        ("name: t\nmodels:\n  hidden: [100]\n  block_size: 64", "block_size 64 does not divide hidden width 100"),
        ("name: t\nmodels:\n  taus: [2]", "tau must be in (0, 1]"),
        ("name: t\nrepeats: 0", "repeats: Input should be greater than 0"),
        ("name: t\nmodels:\n  - {hidden: [64]}\n  - {hidden: [100], block_size: 64}",
         "models[1]: block_size 64 does not divide hidden width 100"),
        ("name: t\nmodels: []", "models: List should have at least 1 item"),
        ("name: t\nmodels:\n  - {batches: [1]}\n  - {batches: [1, 50]}",
         "models[1] and models[0] are both on "),
        ("name: t\nmodels:\n  loss_reduction: median", "models.loss_reduction: Input should be 'mean' or 'sum'"),
        ("name: t\nmodels:\n  l2: -1", "models.l2"),
    ],
)
def test_mistakes_are_one_line_with_their_place(text, message):
    with pytest.raises(UserError) as info:
        parse_suite(text, "my.yaml")
    assert str(info.value).startswith("my.yaml") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_suite_file(tmp_path):
    with pytest.raises(UserError, match="no such suite file"):
        load_suite(tmp_path / "nope.yaml")


def test_cuda_on_a_machine_without_it():
    cases = kernel_cases(parse_suite(sweep(device="[cuda]")))
    if torch.cuda.is_available():
        check_runnable(cases, "s.yaml")
    else:
        with pytest.raises(UserError, match="CUDA is not available"):
            check_runnable(cases, "s.yaml")


def test_include_and_exclude():
    text = sweep(batch="[1, 8]", density="[0.5, 0.25]", exclude="[{batch: 8, density: 0.25}]",
                 include="[{batch: 2, density: 0.1, shape: {in_features: 32, out_features: 32}}]")
    got = {(c.batch, c.density, c.in_features) for c in kernel_cases(parse_suite(text))}
    assert got == {(1, 0.5, 64), (1, 0.25, 64), (8, 0.5, 64), (2, 0.1, 32)}


def test_an_included_value_takes_the_type_a_swept_one_has():
    """Found by the fuzz test: `density: 1` in an include stayed the int 1 in the case."""
    (case,) = [c for c in kernel_cases(parse_suite(sweep(include="[{density: 1, shape: {in_features: 32, out_features: 32}}]"))) if c.density == 1]
    assert type(case.density) is float and (case.in_features, case.out_features) == (32, 32)


def test_shards_partition_the_cases():
    cases = kernel_cases(load_suite(REPO / "suites" / "cpu.yaml"))
    parts = [shard(cases, i, 3) for i in range(3)]
    ids = [c.case_id for part in parts for c in part]
    assert sorted(ids) == sorted(c.case_id for c in cases) and len(set(ids)) == len(ids)
    assert shard(cases, 1, 3) == shard(kernel_cases(load_suite(REPO / "suites" / "cpu.yaml")), 1, 3)
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(UserError):
            parse_shard(bad)


def test_values_that_print_alike_stay_apart_in_ids_and_names():
    """Found probing: `:g` made densities 0.1234561 and 0.1234564 one case, and lr 0.0010000001 reuse
    the checkpoints trained at 0.001. Ids spell every digit where the short form is not exact."""
    cases = kernel_cases(parse_suite(sweep(density="[0.1234561, 0.1234564, 0.5]")))
    assert len({c.case_id for c in cases}) == 3 and any("/d0.5/" in c.case_id for c in cases)
    models = {lr: model_cases(parse_suite(f"name: t\nmodels:\n  policies: [dense]\n  taus: [0.5]\n  lr: {lr}"))
              for lr in ("0.001", "0.0010000001")}
    (short,), (long,) = models.values()
    assert "-lr0.001-" in short.name and short.name != long.name and "-lr0.0010000001-" in long.name


def test_a_fifo_as_a_suite_is_refused_not_waited_on(tmp_path):
    import os

    os.mkfifo(tmp_path / "s.yaml")  # opened for reading, it would block until someone writes
    with pytest.raises(UserError, match="not a regular file"):
        load_suite(tmp_path / "s.yaml")


def test_models_sections_share_a_recipe_through_yaml_merge_keys():
    """`<<: *anchor` (the paper suite's SVHN sections reuse the CIFAR-10 recipe): the merged keys come
    through, a key written beside them overrides its merged value, and a key written twice is still refused."""
    text = """name: t
models:
  - &base {dataset: digits, hidden: [32, 32], block_size: 16, epochs: 1, policies: [reinforce], taus: [0.5], lr: 0.01, l2: 0.1}
  - <<: *base
    policies: [random]
    l2: 0.002
"""
    first, second = parse_suite(text, "t.yaml").models
    assert (second.hidden, second.lr, second.policies, second.l2) == ([32, 32], 0.01, ["random"], 0.002)
    assert first.l2 == 0.1
    cases = model_cases(parse_suite(text, "t.yaml"))
    assert [c.policy for c in cases] == ["reinforce", "random"] and all("l20.1" in c.name or "l20.002" in c.name
                                                                          for c in cases)
    with pytest.raises(UserError, match="appears twice"):
        parse_suite(text + "    l2: 0.5\n", "t.yaml")
