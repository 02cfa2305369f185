"""Which kernel ran: dispatch names the path of its table that ran (condcore.ops.kernel_log), a kernel
row stores the path its ours took, and the direct call (weights not packed ahead) is a provider of its
own beside the packed inference call."""

from __future__ import annotations

import contextlib

import pytest
import torch
from support.paths import REPO

from bench.measure.kernel import run_kernel_case
from bench.plan.cases import KernelCase
from condcore.ops import block_sparse_linear, frozen_weights
from condcore.ops.kernel_log import KERNEL_NAMES, kernels_used, ran, spelled
from condcore.ops.packed_weights import unfrozen
from condcore.ops.registry import KERNELS

OPS = REPO / "condcore" / "ops"


def used(batch: int, *, dtype=torch.float32, frozen: bool = False, density: float = 0.5, out_mask: bool = True,
         in_mask: bool = False, **kwargs) -> list[str]:
    gen = torch.Generator().manual_seed(batch)
    x = torch.randn(batch, 256, generator=gen).to(dtype)
    w = torch.randn(256, 256, generator=gen).to(dtype)
    masks = {"out_mask": torch.rand(batch, 8, generator=gen) < density if out_mask else None,
             "in_mask": torch.rand(batch, 8, generator=gen) < density if in_mask else None}
    with frozen_weights() if frozen else contextlib.nullcontext(), kernels_used() as names:
        block_sparse_linear(x, w, None, **masks, block_size=32, **kwargs)
    return names


def test_each_path_names_itself():
    assert used(64, frozen=True) == used(4, frozen=True) == ["pairs-cpp-packed"]  # fp32 inference
    assert used(64) == ["grouped-cpp"]  # not frozen: the C++ grouped kernel on the plain weight
    assert used(64, dtype=torch.bfloat16, frozen=True) in (["grouped-cpp-packed"], ["grouped-cpp"])  # packed where oneDNN takes bf16
    assert used(4, density=0.1) == ["union-torch"]
    assert used(4, density=0.9) == ["union-dense-fallback"]
    assert used(64, dtype=torch.float16, out_mask=False, in_mask=True) == ["dense-gemm"]
    assert used(8, backend="reference") == ["reference"]


def test_the_torch_ops_grouped_path_names_itself_when_the_cpp_kernel_is_off(monkeypatch):
    from condcore.ops.cpu import native as cpu_native

    monkeypatch.setattr(cpu_native, "_load", lambda: None)
    assert used(64) == ["grouped-torch"]
    assert used(64, frozen=True, dtype=torch.float64) == ["grouped-torch"]  # oneDNN does not take fp64


@pytest.mark.skipif("not __import__('condcore.ops', fromlist=['x']).triton_available(torch.device('cpu'))",
                    reason="needs Triton under TRITON_INTERPRET=1")
def test_triton_paths_name_themselves():
    assert used(32, backend="triton", regime="grouped") == ["triton-grouped"]
    assert used(2, backend="triton", regime="union") == ["triton-union"]


def test_nothing_is_recorded_outside_a_block_and_nested_blocks_see_their_own():
    ran("reference")  # no recorder: nothing kept anywhere
    with kernels_used() as outer:
        ran("union-torch")
        with kernels_used() as inner:
            ran("reference")
            ran("reference")
        assert inner == ["reference"]
    assert outer == ["union-torch", "reference"] and spelled(outer) == "union-torch+reference"


def test_the_legend_names_the_paths_of_the_dispatch_table_exactly():
    """Dispatch records the name of the path that ran, and a Path refuses a name the legend lacks: a
    new path cannot record a name the reports cannot explain, and the legend names no path that is gone."""
    assert {path.name for kernel in KERNELS for path in kernel.paths} == set(KERNEL_NAMES)
    assert "ran(" not in "".join(p.read_text() for p in (OPS / "cpu").glob("*.py"))  # only dispatch names paths


def test_unfrozen_runs_the_direct_path_and_keeps_the_packed_copies():
    x, w = torch.randn(4, 256), torch.randn(256, 256)
    mask = torch.zeros(4, 8, dtype=torch.bool)
    mask[:, 0] = True  # one block of eight: the union path, not its dense fallback
    with frozen_weights():
        with kernels_used() as first:
            block_sparse_linear(x, w, None, out_mask=mask, block_size=32)
        from condcore.ops import packed_weights

        kept = dict(packed_weights._cache)
        with unfrozen(), kernels_used() as direct:
            block_sparse_linear(x, w, None, out_mask=mask, block_size=32)
        assert packed_weights._cache == kept  # nothing dropped, nothing packed
        with kernels_used() as again:
            block_sparse_linear(x, w, None, out_mask=mask, block_size=32)
    assert first == again == ["pairs-cpp-packed"] and direct == ["union-torch"]


def case(**fields) -> KernelCase:
    base = dict(sweep="k", device="cpu", dtype="float32", backend="auto", regime="auto", batch=64, in_features=128,
                out_features=128, block_size=32, density=0.5, masks="out", mask_source="iid")
    return KernelCase(**{**base, **fields})


def test_a_kernel_row_says_which_kernel_ours_and_the_direct_call_took(tmp_path):
    row = run_kernel_case(case(), checkpoints=tmp_path, seed=0, rounds=2, bandwidth=1e10,
                          peers=("ours_direct", "dense_onednn"))
    assert row.status == "ok" and row.kernel == "pairs-cpp-packed"
    checks = {c.provider: c for c in row.checks}
    assert checks["ours"].kernel == "pairs-cpp-packed" and checks["ours_direct"].kernel == "grouped-cpp"
    assert checks["ours_direct"].status == "ok" and row.metric("ours_direct", "time").median > 0
    assert checks["dense"].kernel == checks["dense_onednn"].kernel == ""  # dense GEMMs: no path of ours
    bf16 = run_kernel_case(case(dtype="bfloat16", batch=4, density=0.1), checkpoints=tmp_path, seed=0, rounds=2,
                           bandwidth=1e10)
    assert bf16.kernel == "union-torch"


def test_the_reports_name_the_kernel_of_every_row(tmp_path):
    import pandas as pd
    from support.bench_cli import bench
    from support.suites import tiny_suite

    (tmp_path / "s.yaml").write_text(tiny_suite(repeats=2, kernels={
        "batch": [2, 64], "shape": [{"in_features": 128, "out_features": 128}], "block_size": [32], "density": [0.25],
        "masks": ["out"], "peers": ["ours_direct"]}))
    proc = bench("run", "s.yaml", "--results", "res", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (folder,) = (tmp_path / "res" / "runs").iterdir()
    kernels, providers = pd.read_csv(folder / "kernels.csv"), pd.read_csv(folder / "providers.csv")
    assert list(kernels["kernel"]) == ["pairs-cpp-packed"] * 2
    direct = set(providers.loc[providers["provider"] == "ours_direct", "kernel"])
    # batch 64 takes the grouped C++ kernel; batch 2 a union path (which one depends on how dense the union is)
    assert {"grouped-cpp"} <= direct <= {"grouped-cpp", "union-torch", "union-dense-fallback"}, direct
    report = bench("report", folder, cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    assert "kernel pairs-cpp-packed" in report.stdout  # the same in every row: in the table's title
    assert "pairs-cpp-packed: C++ pair kernel" in " ".join(report.stdout.split())  # and the legend
    page = (folder / "report" / "index.html").read_text()
    assert "<b>pairs-cpp-packed</b>: C++ pair kernel" in page
