"""Providers: the baseline, ours and the peers, each checked against the reference, then timed together."""

from __future__ import annotations

import pandas as pd
import pytest
from support.bench_cli import bench
from support.suites import tiny_suite

from bench.core.providers import PROVIDERS, Provider, peer_names, register
from bench.measure.kernel import run_kernel_case
from bench.plan.cases import KernelCase
from bench.store.results import load_run
from condcore.ops.reference import reference_linear

PEERS = tiny_suite(name="peers", kernels={"batch": [2, 32], "density": [0.25],
                                          "peers": ["dense_onednn", "naive_gather", "torch_sparse"]})


def case(**fields) -> KernelCase:
    base = dict(sweep="k", device="cpu", dtype="float32", backend="auto", regime="auto", batch=8, in_features=64,
                out_features=64, block_size=16, density=0.5, masks="both", mask_source="iid")
    return KernelCase(**{**base, **fields})


def test_a_suite_times_every_peer_beside_ours_each_checked_first(tmp_path):
    (tmp_path / "p.yaml").write_text(PEERS)
    proc = bench("run", "p.yaml", "--results", "res", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "res" / "runs").iterdir()
    run = load_run(folder)
    long = pd.read_csv(folder / "providers.csv")
    assert len(run.kernels) == 4 and (run.kernels["status"] == "ok").all() and "providers" not in run.kernels
    # the sweep's peers, and the dense paths every case times (the matrix-vector form only at batch 1)
    assert len(long) == 4 * 6 and set(long["provider"]) == {"dense", "ours", "dense_onednn", "dense_gemv",
                                                             "naive_gather", "torch_sparse"}
    gemv = long["provider"] == "dense_gemv"
    assert (long[gemv]["status"] == "skipped").all() and (long[~gemv]["status"] == "ok").all()
    long = long[~gemv]
    assert (long["max_relative_error"] < 2e-3).all()  # the dense ones against the dense product
    assert ((long["speedup_ci_low"] <= long["speedup"]) & (long["speedup"] <= long["speedup_ci_high"])).all()
    # the baseline of record's speedup over itself is 1 in every round; ours' entry is the row's own speedup
    baselines = run.kernels.set_index("case_id")["baseline"]
    assert set(baselines) <= {"dense", "dense_onednn"}
    of_record = long[long["provider"] == long["case_id"].map(baselines)]
    assert len(of_record) == 4 and (of_record["speedup"] == 1.0).all()
    ours = long[long["provider"] == "ours"].set_index("case_id")["speedup"]
    assert ours.to_dict() == pytest.approx(run.kernels.set_index("case_id")["speedup"].to_dict())
    assert run.kernels["ours_rank"].between(1, 5).all() and (run.kernels["providers_timed"] == 5).all()
    # the report puts them side by side, in the terminal and the HTML page
    report = bench("report", folder, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    table = report.stdout.split("ours against its peers")[1]
    assert all(name in table for name in ("naive_gather", "torch_sparse", "dense_onednn")) and " of 5" in table
    page = (folder / "report" / "index.html").read_text()
    assert "Ours against its peers" in page and "id='peers'" in page and "every provider of every case" in page
    assert (folder / "report" / "providers.png").stat().st_size > 0  # each provider's speedup, with intervals


def test_adding_a_provider_is_one_registration(monkeypatch, tmp_path):
    """A toy peer computing the spec joins a case; one that computes it wrong is refused, not timed."""
    monkeypatch.setattr("bench.core.providers.PROVIDERS", dict(PROVIDERS))
    from bench.measure import kernel as measure

    monkeypatch.setattr(measure, "PROVIDERS", __import__("bench.core.providers", fromlist=["PROVIDERS"]).PROVIDERS)

    def spec(p, backend, regime, out):
        return lambda: out.copy_(reference_linear(p.x, p.weight, p.bias, p.in_mask, p.out_mask, p.block_size))

    register(Provider("toy_spec", "peer", "the reference itself", spec))
    register(Provider("toy_wrong", "peer", "forgets the bias", lambda p, b, r, out: lambda: out.zero_()))
    assert {"toy_spec", "toy_wrong"} <= set(peer_names())
    row = run_kernel_case(case(), checkpoints=tmp_path, seed=0, rounds=3, bandwidth=1e10,
                          peers=("toy_spec", "toy_wrong"))
    assert row.status == "ok"
    checks = {c.provider: c for c in row.checks}
    assert checks["toy_spec"].status == "ok" and row.metric("toy_spec", "time").median > 0
    assert checks["toy_wrong"].status == "failed" and "wrong result" in checks["toy_wrong"].error
    assert row.metric("toy_wrong", "time") is None and row.providers_timed == 4  # with dense_onednn
    # every timed provider has the same metrics, each in its unit (ours also its speedup over plain dense)
    assert {(m.metric, m.unit) for m in row.metrics if m.provider == "toy_spec"} | {("plain_speedup", "x")} == {
        (m.metric, m.unit) for m in row.metrics if m.provider == "ours"} >= {("time", "s"), ("speedup", "x")}
    with pytest.raises(ValueError, match="registered twice"):
        register(Provider("toy_spec", "peer", "again", spec))


def test_a_peer_that_cannot_run_a_case_says_why(tmp_path):
    row = run_kernel_case(case(dtype="bfloat16"), checkpoints=tmp_path, seed=0, rounds=2, bandwidth=1e10,
                          peers=("torch_sparse",))
    (peer,) = [c for c in row.checks if c.provider == "torch_sparse"]
    assert row.status == "ok" and peer.status == "skipped" and "bfloat16" in peer.error
    both_masks = run_kernel_case(case(masks="both", batch=4), checkpoints=tmp_path, seed=0, rounds=2,
                                 bandwidth=1e10, peers=("naive_gather",))
    assert {c.provider: c.status for c in both_masks.checks} == {
        "dense": "ok", "ours": "ok", "dense_onednn": "ok", "dense_gemv": "skipped", "naive_gather": "ok"}


@pytest.mark.parametrize("dtype,tolerance", [("float32", 1e-5), ("bfloat16", 3e-2), ("float16", 3e-3)])
@pytest.mark.parametrize("batch", [1, 17])
@pytest.mark.parametrize("masks", ["out", "both"])
@pytest.mark.parametrize("pattern", ["iid", "all-off", "all-on", "one-block"])
def test_grouped_gemm_with_routing_computes_the_spec(dtype, tolerance, batch, masks, pattern):
    """The grouped-GEMM anchor (torch._grouped_mm, rows routed to their active output blocks) against the
    reference, into a poisoned output: every element written, dropped blocks exactly zero."""
    import torch

    from condcore.problems import make_problem

    if not hasattr(torch, "_grouped_mm"):
        pytest.skip(f"torch {torch.__version__} has no torch._grouped_mm")
    gen = torch.Generator().manual_seed(batch)
    p = make_problem(batch, 32, 64, 16, in_density=0.5 if masks == "both" else None, out_density=0.5,
                     dtype=getattr(torch, dtype), generator=gen, bias=batch > 1)
    if pattern != "iid":
        p.out_mask.fill_(pattern == "all-on")
        if pattern == "one-block":
            p.out_mask[:, 2] = True
    provider = PROVIDERS["grouped_mm"]
    assert provider.unsupported(p) == ""
    out = torch.full((batch, 64), float("nan"), dtype=p.x.dtype)
    y = provider.build(p, "auto", "auto", out)()
    expected = p.reference()
    assert not y.isnan().any()
    assert ((y.double() - expected).abs() <= tolerance * (1 + expected.abs())).all()
    dropped = ~p.out_mask.repeat_interleave(16, dim=1)
    assert (y[dropped] == 0).all()


def test_grouped_gemm_says_why_it_cannot_run():
    import torch

    from condcore.problems import make_problem

    p = make_problem(4, 32, 64, 16, out_density=None, generator=torch.Generator().manual_seed(0))
    assert PROVIDERS["grouped_mm"].unsupported(p) == "needs an output mask"
    wide = make_problem(4, 32, 64, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    if hasattr(torch, "_grouped_mm"):
        assert "torch._grouped_mm refuses torch.float64 on cpu" in PROVIDERS["grouped_mm"].unsupported(wide)
