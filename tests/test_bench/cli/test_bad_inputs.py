"""Every entry of the bad-input corpus, as a user would meet it: one line on stderr, exit code 2, no
traceback, and nothing left behind (no run folder, no file created or changed)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch
from support.bad_inputs import CORPUS, Bad
from support.bench_cli import bench, snapshot


def run_alone(argv: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    return bench(*argv, cwd=cwd, env_extra=env, fresh=True)


def check_refusal(entry: Bad, root: Path, run) -> None:
    if entry.without_cuda and torch.cuda.is_available():
        pytest.skip("not a mistake on a machine with CUDA")
    for name, content in entry.files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        if path.read_bytes().startswith(b"#!"):
            path.chmod(0o755)
    for name, target in entry.links.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).symlink_to(target)
    before = snapshot(root)
    env = {name: value.replace("{root}", str(root)).replace("{PATH}", os.environ.get("PATH", ""))
           for name, value in entry.env.items()}
    proc = (run_alone if entry.fresh else run)(entry.argv, root, env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr and 1 <= len(lines) <= 3, proc.stderr[-2000:]
    assert entry.message in proc.stderr, proc.stderr
    assert snapshot(root) == before, "the refused command created or changed files"


@pytest.mark.parametrize("entry", CORPUS, ids=[e.id for e in CORPUS])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(entry: Bad, tmp_path):
    check_refusal(entry, tmp_path, lambda argv, cwd, env: bench(*argv, cwd=cwd, env_extra=env))


# A few in a fresh interpreter of their own, as a user meets them: nothing at import time (a warning,
# a traceback at exit) may differ from the forked children above.
ALONE = [CORPUS[0], next(e for e in CORPUS if "res/runs" in " ".join(e.argv)), CORPUS[-1]]


@pytest.mark.parametrize("entry", ALONE, ids=[e.id for e in ALONE])
def test_bad_input_in_a_process_of_its_own(entry: Bad, tmp_path):
    check_refusal(entry, tmp_path, run_alone)


def test_ids_are_unique():
    ids = [e.id for e in CORPUS]
    assert len(ids) == len(set(ids))
