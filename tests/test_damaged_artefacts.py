"""Every entry of the damaged-artefact corpus (tests/damaged_artefacts.py), on a copy of one real run:
refused in one line with exit 2 and nothing changed, or recovered with a note that does not come back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bench_cli import run_forked, snapshot
from damaged_artefacts import CORPUS, Damaged

SUITE = """name: t
repeats: 2
threads: 1
kernels:
  - {name: k, batch: [4], shape: [{in_features: 64, out_features: 64}], block_size: [16], density: [0.5, 0.25]}
models: {hidden: [32], block_size: 16, epochs: 1, policies: [reinforce], taus: [0.25]}
"""


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, cli_server) -> Path:
    """One real run (two kernel cases, one trained CondNet) with its checkpoint, under res/."""
    root = tmp_path_factory.mktemp("made")
    (root / "s.yaml").write_text(SUITE)
    done = run_forked(cli_server, ["run", "s.yaml", "--results", "res", "--quiet"], root, tmp_path_factory.mktemp("logs"))
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
def test_damage_is_refused_in_one_line_or_recovered_with_a_note(entry: Damaged, finished_run, tmp_path, tmp_path_factory,
                                                                cli_server):
    root = tmp_path / "w"
    shutil.copytree(finished_run, root, symlinks=True)
    names = placed(root)
    apply(entry, root, names)
    logs = tmp_path_factory.mktemp("logs")
    before = snapshot(root)
    proc = run_forked(cli_server, command(entry.command, names), root, logs)
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
    again = run_forked(cli_server, command(entry.then, names), root, logs)
    assert again.returncode == 0 and "Traceback" not in again.stderr, again.stderr[-2000:]
    if entry.mended:
        assert entry.message not in again.stdout + again.stderr, "the damage came back"


def test_ids_are_unique():
    ids = [e.id for e in CORPUS]
    assert len(ids) == len(set(ids))
