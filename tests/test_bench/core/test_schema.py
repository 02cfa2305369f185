"""The results schema: rows typed and versioned, version-1 runs still read, unknown versions refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.bench_cli import bench
from support.paths import REPO

from bench.core.schema import (
    SCHEMA_VERSION,
    SUMMARY,
    KernelRow,
    Metric,
    SchemaError,
    kernel_summary,
    parse_kernel_row,
    parse_model_row,
)
from bench.store.results import load_run

RUNS = REPO / "results" / "runs"
BEFORE_PEERS = RUNS / "cpu-20261125-041655"  # version 1, no seeds, no intervals on the models
WITH_PEERS = RUNS / "cpu-20261201-210757"  # version 1, peers in a nested list


def raw_rows(folder: Path, table: str) -> list[dict]:
    return [json.loads(line) for line in (folder / f"{table}.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("folder", [BEFORE_PEERS, WITH_PEERS], ids=lambda f: f.name)
def test_version_1_runs_read_with_the_same_numbers(folder):
    run = load_run(folder)
    raw = raw_rows(folder, "kernels")
    assert len(run.kernel_rows) == len(raw)
    for row, old in zip(run.kernel_rows, raw):
        flat = kernel_summary(row)
        for column in SUMMARY:
            if column in old:
                assert flat[column] == pytest.approx(old[column], nan_ok=True), column
        # the density the suite asked for and a trained case's tau now have names of their own
        if old["mask_source"] == "trained":
            assert row.requested_density is None and row.tau == old["density"]
        else:
            assert row.requested_density == old["density"] and row.tau is None
        assert row.work_density == old["work_density"]
    for model, old in zip(run.model_rows, raw_rows(folder, "models")):
        assert model.realized_density == json.loads(old["density"])
        batches = sorted(int(c.removeprefix("speedup_b")) for c in old if c.startswith("speedup_b"))
        for b in batches:
            speedup = next(m for m in model.metrics if (m.provider, m.metric, m.batch) == ("ours", "speedup", b))
            assert speedup.median == old[f"speedup_b{b}"] and speedup.low == old.get(f"ci_low_b{b}")
            dense = next(m for m in model.metrics if (m.provider, m.metric, m.batch) == ("dense", "time", b))
            assert dense.median == pytest.approx(old[f"dense_ms_b{b}"] / 1e3)
    assert set(run.model_speeds["batch"]) == {1, 256}


def test_peers_of_a_version_1_run_are_long_format_metrics():
    run = load_run(WITH_PEERS)
    old = raw_rows(WITH_PEERS, "kernels")[0]
    row = run.kernel_rows[0]
    assert [c.provider for c in row.checks] == [e["provider"] for e in old["providers"]]
    for entry in old["providers"]:
        assert row.metric(entry["provider"], "time").median == entry["median_s"]
        assert row.metric(entry["provider"], "speedup").median == pytest.approx(entry["speedup"])
    long = run.metrics
    assert set(long.columns) >= {"case_id", "provider", "metric", "unit", "median", "iqr", "low", "high"}
    assert (long[long["metric"] == "time"]["unit"] == "s").all()


def test_a_row_written_now_reads_back_unchanged():
    run = load_run(WITH_PEERS)
    for row in run.kernel_rows + run.model_rows:
        dumped = json.loads(json.dumps(row.model_dump()))
        assert dumped["schema_version"] == SCHEMA_VERSION
        again = (parse_kernel_row if isinstance(row, KernelRow) else parse_model_row)(dumped)
        assert again == row


@pytest.mark.parametrize("version", [5, 0, "2", True])
def test_an_unknown_version_is_refused_naming_it(version):
    with pytest.raises(SchemaError, match=f"schema version {version!r}"):
        parse_kernel_row({"case_id": "x", "schema_version": version})


def test_a_row_of_the_wrong_shape_is_one_line():
    good = load_run(WITH_PEERS).kernel_rows[0].model_dump()
    with pytest.raises(SchemaError, match=r"metrics\.0\.median"):
        parse_kernel_row({**good, "metrics": [{**good["metrics"][0], "median": "fast"}]})
    with pytest.raises(SchemaError, match="surprise"):
        parse_kernel_row({**good, "surprise": 1})
    with pytest.raises(SchemaError, match="version-1"):
        parse_model_row({"name": "m-s0", "dataset": "digits"})


def test_a_run_with_a_newer_row_is_one_line_and_exit_2(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(BEFORE_PEERS, folder, ignore=shutil.ignore_patterns("report"))
    row = {**raw_rows(folder, "kernels")[0], "schema_version": 7}
    with open(folder / "kernels.jsonl", "a") as f:
        f.write(json.dumps(row) + "\n")
    proc = bench("report", folder, "--out", tmp_path / "out", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert "line 34" in line and "schema version 7" in line


def test_a_metric_knows_its_unit_and_drops_non_finite_bounds():
    m = Metric.of("ours", "speedup", 2.0, float("nan"), 1.5, float("inf"))
    assert (m.unit, m.iqr, m.low, m.high) == ("x", None, 1.5, None)
    with pytest.raises(KeyError):
        Metric.of("ours", "speed", 2.0)


def test_a_case_and_its_stored_row_name_the_same_fields_with_the_same_values():
    """The row repeats the case's fields on purpose (what is stored is versioned apart from the class the
    runner builds cases from): every field a case gives its row is a row field of the same type, and
    survives the row's trip through its JSON line unchanged, for synthetic and trained-mask cases."""
    import dataclasses
    import typing

    from bench.plan.cases import KernelCase

    synthetic = KernelCase("s", "cpu", "bfloat16", "torch", "auto", 16, 256, 512, 64, 0.25, "both", "clustered", cache="warm")
    trained = KernelCase("t", "cuda", "float32", "triton", "union", 1, 784, 2048, 128, 0.1, "out", "trained", model="m-1")
    row_fields = KernelRow.model_fields
    for case in (synthetic, trained):
        given = case.to_dict()
        assert set(given) <= set(row_fields), set(given) - set(row_fields)
        for name, value in given.items():
            kinds = typing.get_args(row_fields[name].annotation) or (row_fields[name].annotation,)
            assert isinstance(value, kinds), (name, value, kinds)
        row = KernelRow(**given, regime_used="union", status="failed", error="refused before running")
        stored = parse_kernel_row(json.loads(row.model_dump_json()))
        assert {name: getattr(stored, name) for name in given} == given
    # and every field of the case reaches its row (by its own name, or density as requested_density / tau)
    named = {f.name for f in dataclasses.fields(KernelCase)} - {"density"}
    assert named <= set(synthetic.to_dict()) and {"requested_density", "tau"} <= set(synthetic.to_dict())
    assert (synthetic.to_dict()["requested_density"], trained.to_dict()["tau"]) == (0.25, 0.1)
