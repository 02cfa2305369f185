"""A git revision's source tree, exported to a temporary folder, so that its benchmarks can run beside
the working tree's in the same window. `git archive` rather than a worktree: nothing is registered in
the repository, so a killed check leaves no stale worktree behind."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.core.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    if shutil.which("git") is None:
        raise UserError("git is not installed; a revision cannot be checked out without it")
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, timeout=300, check=False)


def resolve_commit(rev: str, repo: Path = PROJECT_ROOT) -> str:
    """The full hash of rev, or one line saying why there is none."""
    if rev.startswith("-") or not rev.strip():
        raise UserError(f"{rev!r} is not a git revision")
    if _git(repo, "rev-parse", "--git-dir").returncode != 0:
        raise UserError(f"{repo} is not a git repository: no revision to compare against")
    found = _git(repo, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    if found.returncode != 0:
        raise UserError(f"{rev}: no such commit in {repo} (a shallow clone may lack it)")
    return found.stdout.decode().strip()


@contextmanager
def exported_revision(rev: str, repo: Path = PROJECT_ROOT) -> Iterator[tuple[Path, str]]:
    """(the folder holding rev's tracked files, rev's full hash); the folder is removed afterwards."""
    commit = resolve_commit(rev, repo)
    archive = _git(repo, "archive", "--format=tar", commit)
    if archive.returncode != 0:
        raise UserError(f"{rev}: git archive failed: {archive.stderr.decode(errors='replace').strip()}")
    with tempfile.TemporaryDirectory(prefix=f"condbench-{commit[:12]}-") as folder:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder), commit
