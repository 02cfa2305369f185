"""`bench profile` and `bench run --profile` end to end on a tiny suite: the profile rows, the traces,
the phase table and the HTML page linking the traces; a run without --profile writes none of it."""

from __future__ import annotations

import gzip
import json

from support.bench_cli import bench, only_run
from support.suites import TRAINED, tiny_suite

from bench.store.results import load_run


def test_profile_writes_phases_traces_memory_and_links_them(tmp_path):
    (tmp_path / "tiny.yaml").write_text(tiny_suite())
    proc = bench("profile", "tiny.yaml", "--results", "res", "--case", "k/*/B32/*", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = load_run(only_run(tmp_path / "res"))
    assert len(run.kernel_rows) == 4 and all(r.batch == 32 for r in run.kernel_rows)  # --case picked them
    assert {p.case_id for p in run.kernel_profiles} == {r.case_id for r in run.kernel_rows}
    for prof in run.kernel_profiles:
        assert not prof.error
        assert [p.provider for p in prof.providers] == ["ours", "dense"]
        for p in prof.providers:
            assert abs(sum(p.phases.values()) - p.total_s) < 1e-9 * max(1.0, p.total_s)
            assert p.timed_s and p.plain_s and p.calls >= 10
            assert p.extra_memory_bytes is None or p.extra_memory_bytes >= 0
            trace = json.loads(gzip.decompress((run.folder / p.trace).read_bytes()))
            assert any(e.get("name") == "condbench::call" for e in trace["traceEvents"])
        assert "gemm" in prof.providers[1].phases  # the dense baseline is one GEMM
    assert "where each case's time goes" in proc.stdout
    assert (run.folder / "phases.csv").exists() and not run.phases.empty
    page = (run.folder / "report" / "index.html").read_text()
    assert "<h2>Profiles</h2>" in page and "href='../traces/" in page
    assert json.loads((run.folder / "env.json").read_text())["profile"] is True


def test_a_run_without_profile_profiles_nothing(tmp_path):
    (tmp_path / "tiny.yaml").write_text(tiny_suite())
    proc = bench("run", "tiny.yaml", "--results", "res", "--quiet", "--case", "k/*/B2/*/d0.5/out/*", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    folder = only_run(tmp_path / "res")
    assert len(load_run(folder).kernel_rows) == 1
    assert not (folder / "profiles.jsonl").exists() and not (folder / "traces").exists()


def test_model_profiles_explain_the_gap(tmp_path):
    (tmp_path / "m.yaml").write_text(tiny_suite(kernels=TRAINED, models={"policies": ["reinforce"]}))
    proc = bench("profile", "m.yaml", "--results", "res", "--case", "digits-*", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = load_run(only_run(tmp_path / "res"))
    assert run.kernel_rows == []  # the glob matched the model only
    assert sorted(p.batch for p in run.model_profiles) == [1, 256]
    assert proc.stdout.count("the speed of its dense twin") == 2
    page = (run.folder / "report" / "index.html").read_text()
    assert "layer0/gate" in page and "layer1/linear" in page
