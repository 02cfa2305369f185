"""Every entry of the bad-input corpus, as a user would meet it: one line on stderr, exit code 2, no
traceback, and nothing left behind (no run folder, no file created or changed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bad_inputs import CORPUS, Bad


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its contents; a run folder's lock file is the writer's, not a result."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"} | {str(p.relative_to(root)) + "/": b"" for p in root.rglob("*") if p.is_dir()}


@pytest.mark.parametrize("entry", CORPUS, ids=[e.id for e in CORPUS])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(entry: Bad, tmp_path):
    if entry.without_cuda and torch.cuda.is_available():
        pytest.skip("not a mistake on a machine with CUDA")
    for name, content in entry.files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "bench", *entry.argv], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, env={**os.environ, "COLUMNS": "200"}, errors="replace")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and 1 <= len(lines) <= 3, proc.stderr[-2000:]
    assert entry.message in proc.stderr, proc.stderr
    assert snapshot(tmp_path) == before, "the refused command created or changed files"


def test_ids_are_unique():
    ids = [e.id for e in CORPUS]
    assert len(ids) == len(set(ids))
