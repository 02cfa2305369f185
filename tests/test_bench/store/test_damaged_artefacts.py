"""Every entry of the damaged-artefact corpus (tests/support/damaged_artefacts.py), on a copy of one real run:
refused in one line with exit 2 and nothing changed, or recovered with a note that does not come back."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.bench_cli import bench, snapshot
from support.damaged_artefacts import CORPUS, Damaged
from support.suites import tiny_suite

SUITE = tiny_suite(name="t", repeats=2,
                   kernels={"batch": [4], "shape": [{"in_features": 64, "out_features": 64}], "density": [0.5, 0.25],
                            "masks": None},
                   models={"hidden": [32], "epochs": 1, "policies": ["reinforce"], "taus": [0.25], "providers": ["ours"]})


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One real run (two kernel cases, one trained CondNet) with its checkpoint, under res/."""
    root = tmp_path_factory.mktemp("made")
    (root / "s.yaml").write_text(SUITE)
    done = bench("run", "s.yaml", "--results", "res", "--quiet", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    (root / "s.yaml").unlink()
    return root


def placed(root: Path) -> dict[str, str]:
    (run,) = (root / "res" / "runs").iterdir()
    (checkpoint,) = (root / "res" / "checkpoints").iterdir()
    return {"RUN": str(run.relative_to(root)), "CKPT": str(checkpoint.relative_to(root))}


def apply(entry: Damaged, root: Path, names: dict[str, str]) -> None:
    spell = lambda text: names.get(text.split("/")[0], text.split("/")[0]) + text[len(text.split("/")[0]):]  # noqa: E731
    for name, change in entry.damage.items():
        path = root / spell(name)
        if change is None:
            path.unlink()
        elif isinstance(change, bytes):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(change)
        else:
            path.write_bytes(change(path.read_bytes()))
    for name, content in entry.made.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


def command(text: str, names: dict[str, str]) -> list[str]:
    return [names.get(word.split("/")[0], word.split("/")[0]) + word[len(word.split("/")[0]):] for word in text.split()]


@pytest.mark.parametrize("entry", CORPUS, ids=[e.id for e in CORPUS])
def test_damage_is_refused_in_one_line_or_recovered_with_a_note(entry: Damaged, finished_run, tmp_path):
    root = tmp_path / "w"
    shutil.copytree(finished_run, root, symlinks=True)
    names = placed(root)
    apply(entry, root, names)
    before = snapshot(root)
    proc = bench(*command(entry.command, names), cwd=root)
    said = proc.stdout + proc.stderr
    assert "Traceback" not in said, said[-3000:]
    if not entry.recovers:
        assert proc.returncode == 2, (proc.returncode, said[-2000:])
        assert 1 <= len(proc.stderr.strip().splitlines()) <= 3, proc.stderr[-2000:]
        assert entry.message in proc.stderr, proc.stderr
        assert snapshot(root) == before, "the refused command created or changed files"
        return
    assert proc.returncode == 0, (proc.returncode, said[-2000:])
    assert entry.message in said, said[-3000:]
    again = bench(*command(entry.then, names), cwd=root)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    if entry.mended:
        assert entry.message not in again.stdout + again.stderr, "the damage came back"


def test_ids_are_unique():
    ids = [e.id for e in CORPUS]
    assert len(ids) == len(set(ids))


# Faults that are not a damaged file: where a command runs from, what it writes, two at once, a kill.

def copy_of(finished_run: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    root = tmp_path / "w"
    shutil.copytree(finished_run, root, symlinks=True)
    return root, placed(root)


def test_a_resume_from_another_folder_trains_into_its_own_results_root(finished_run, tmp_path):
    """Found probing: `run --resume` started elsewhere trained its checkpoints into ./results/."""
    root, names = copy_of(finished_run, tmp_path)
    shutil.rmtree(root / names["CKPT"])
    (root / names["RUN"] / "models.jsonl").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = bench("run", "--resume", str(root / names["RUN"]), "--quiet", cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not any(elsewhere.iterdir()), "the resume wrote into the folder it was started from"
    assert (root / names["CKPT"] / "model.pt").is_file()


def test_report_out_writes_only_into_out(finished_run, tmp_path):
    """Found probing: `report RUN --out rep` wrote its CSV tables into RUN (and failed on a read-only run).
    A report is a reading command: it writes its page and figures, and no tables anywhere."""
    root, names = copy_of(finished_run, tmp_path)
    before = snapshot(root / names["RUN"])
    proc = bench("report", names["RUN"], "--out", "rep", cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert snapshot(root / names["RUN"]) == before
    written = {p.name for p in (root / "rep").iterdir()}
    assert "index.html" in written and not any(name.endswith((".csv", ".parquet")) for name in written), written


@pytest.mark.slow
def test_two_runs_training_one_model_at_once_leave_one_whole_checkpoint(finished_run, tmp_path):
    """Found probing: two runs training the same model into one checkpoints folder (torch.save writing
    in place, no lock) left a model.pt that no later run could load."""
    root, names = copy_of(finished_run, tmp_path)
    shutil.rmtree(root / names["CKPT"])
    command = [sys.executable, "-m", "bench", "run", f"{names['RUN']}/suite.yaml", "--results", "res", "--quiet"]
    both = [subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = [p.communicate(timeout=600) for p in both]
    assert [p.returncode for p in both] == [0, 0], [err[-2000:] for _, err in outcomes]
    again = bench("run", f"{names['RUN']}/suite.yaml", "--results", "res", "--quiet", cwd=root)
    assert again.returncode == 0 and "damaged" not in again.stderr, again.stderr[-2000:]
    errors = {json.loads(line)["test_error"] for run in (root / "res" / "runs").iterdir()
              for line in (run / "models.jsonl").read_text().splitlines()}
    assert len(errors) == 1, "the runs did not all use the one checkpoint"


def test_an_interrupted_merge_leaves_nothing_that_loads_as_a_run(finished_run, tmp_path, monkeypatch):
    """Found probing: a killed merge left a folder that loaded as a finished run, and its retry was refused."""
    import bench.store.results as results

    root, names = copy_of(finished_run, tmp_path)
    real = results._write_merged

    def killed(runs, out, *args):
        real(runs, out, *args)
        (out / "kernels.jsonl").write_text((out / "kernels.jsonl").read_text()[:50])
        raise KeyboardInterrupt

    monkeypatch.setattr(results, "_write_merged", killed)
    with pytest.raises(KeyboardInterrupt):
        results.merge_runs([root / names["RUN"]], root / "m")
    assert not (root / "m").exists() and not list(root.glob(".merging-*"))
    monkeypatch.setattr(results, "_write_merged", real)
    merged = results.merge_runs([root / names["RUN"]], root / "m")
    assert len(merged.kernels) == 2
