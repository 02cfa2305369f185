"""The baseline of record: every kernel case's headline speedup divides the fastest dense path that
computed it correctly, the row names it, and the speedup over plain x @ W.T stays beside it."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from bench.analysis.rows import baseline_cell, baseline_phrase
from bench.core.providers import DENSE_CANDIDATES, PROVIDERS, Provider, fastest_dense, register
from bench.core.schema import kernel_summary, parse_kernel_row
from bench.measure import kernel as measure
from bench.measure.kernel import run_kernel_case
from bench.plan.cases import KernelCase
from condcore.timing import median, ratio_samples

pytestmark = pytest.mark.alone  # timings or the machine's load: never beside other tests (pyproject)


def case(**fields) -> KernelCase:
    base = dict(sweep="k", device="cpu", dtype="float32", backend="auto", regime="auto", batch=8, in_features=256,
                out_features=256, block_size=32, density=0.25, masks="out", mask_source="iid")
    return KernelCase(**{**base, **fields})


@pytest.fixture
def registry(monkeypatch):
    """A copy of the provider registry that a test may add to."""
    providers = dict(PROVIDERS)
    monkeypatch.setattr("bench.core.providers.PROVIDERS", providers)
    monkeypatch.setattr(measure, "PROVIDERS", providers)
    return providers


def _precomputed(p, backend, regime, out):
    # The dense product computed once at build time: a copy, faster than any GEMM, and correct.
    product = torch.mm(p.x, p.weight.t()) + (p.bias if p.bias is not None else 0)
    return lambda: out.copy_(product)


def test_a_faster_dense_provider_becomes_the_baseline_of_record(registry, tmp_path):
    register(Provider("toy_dense", "peer", "the dense product, precomputed", _precomputed, dense=True))
    row = run_kernel_case(case(), checkpoints=tmp_path, seed=0, rounds=5, bandwidth=1e10, peers=("toy_dense",))
    assert row.status == "ok" and row.baseline == "toy_dense"
    summary = kernel_summary(row)
    toy, dense, ours = (row.metric(n, "time").median for n in ("toy_dense", "dense", "ours"))
    assert summary["baseline_median_s"] == toy < dense and summary["dense_median_s"] == dense
    # the headline divides the toy's times; plain dense's survives as a column
    assert row.metric("toy_dense", "speedup").median == 1.0
    assert summary["speedup"] < summary["plain_speedup"]
    assert summary["fraction_of_ideal"] == pytest.approx(summary["speedup"] * row.ideal_density)
    assert summary["dense_tflops"] == pytest.approx(row.metric("toy_dense", "gemm_rate").median)
    assert baseline_cell(summary) == "toy_dense" and baseline_cell({"baseline": "dense_onednn"}) == "onednn"


def test_a_faster_dense_provider_that_computes_wrong_is_not_the_baseline(registry, tmp_path):
    register(Provider("toy_wrong_dense", "peer", "fast and wrong", lambda p, b, r, out: lambda: out.zero_(), dense=True))
    row = run_kernel_case(case(), checkpoints=tmp_path, seed=0, rounds=3, bandwidth=1e10, peers=("toy_wrong_dense",))
    checks = {c.provider: c.status for c in row.checks}
    assert row.status == "ok" and checks["toy_wrong_dense"] == "failed"
    assert row.baseline in ("dense", "dense_onednn")


def test_every_case_times_the_dense_paths_and_picks_the_fastest(tmp_path):
    one = run_kernel_case(case(batch=1), checkpoints=tmp_path, seed=0, rounds=5, bandwidth=1e10)
    checks = {c.provider: c.status for c in one.checks}
    assert {checks[n] for n in DENSE_CANDIDATES} == {"ok"}  # at batch 1 the matrix-vector form too
    times = {m.provider: m.median for m in one.metrics if m.metric == "time"}
    assert one.baseline == min(DENSE_CANDIDATES, key=times.__getitem__)
    many = run_kernel_case(case(batch=8), checkpoints=tmp_path, seed=0, rounds=3, bandwidth=1e10)
    assert {c.provider: c.status for c in many.checks}["dense_gemv"] == "skipped"


def test_fastest_dense_ignores_providers_that_do_not_compute_the_dense_layer():
    assert fastest_dense({"dense": 2.0, "ours": 0.5, "naive_gather": 0.1, "dense_onednn": 1.5}) == "dense_onednn"
    assert fastest_dense({"dense": 1.0, "dense_onednn": 1.0}) == "dense"  # a tie keeps the plain one


def test_the_headline_and_the_plain_speedup_are_per_round_ratios_over_their_dense_paths(tmp_path):
    samples = {}
    row = run_kernel_case(case(batch=16), checkpoints=tmp_path, seed=0, rounds=5, bandwidth=1e10,
                          on_timed=lambda build, timed: samples.update(timed))
    plain, headline = row.metric("ours", "plain_speedup"), row.metric("ours", "speedup")
    assert plain.low <= plain.median <= plain.high
    assert plain.median == pytest.approx(median(ratio_samples(samples["dense"], samples["ours"])))
    assert headline.median == pytest.approx(median(ratio_samples(samples[row.baseline], samples["ours"])))


def test_rows_from_before_the_baseline_of_record_divide_plain_dense(tmp_path):
    row = run_kernel_case(case(), checkpoints=tmp_path, seed=0, rounds=3, bandwidth=1e10)
    raw = row.model_dump()
    raw.pop("baseline")
    raw["metrics"] = [m for m in raw["metrics"] if m["metric"] != "plain_speedup"]
    old = parse_kernel_row(raw)
    summary = kernel_summary(old)
    assert old.baseline == "" and old.baseline_of_record == "dense"
    assert summary["baseline_median_s"] == summary["dense_median_s"]
    assert summary["plain_speedup"] == summary["speedup"]  # it was over plain dense
    assert "plain" in baseline_phrase(pd.DataFrame([summary]))
    assert "best dense path" in baseline_phrase(pd.DataFrame([kernel_summary(row)]))
