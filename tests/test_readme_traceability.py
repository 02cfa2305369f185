"""Every results/ folder or file the README quotes is committed: its numbers must be traceable from a
clean checkout (results/runs/ is git-ignored, so a run is committed only when forced)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def quoted_results_paths(text: str) -> set[str]:
    """The results/ paths named in backquotes or plain text, without trailing punctuation."""
    return {m.rstrip("/.,;:)") for m in re.findall(r"results/[A-Za-z0-9_./-]+", text)}


def test_the_pattern_finds_paths_in_prose():
    text = "Run `results/runs/cpu-20261202-062149/` (see results/ab/x-1/y.txt), and `results/checkpoints/`."
    assert quoted_results_paths(text) == {"results/runs/cpu-20261202-062149", "results/ab/x-1/y.txt",
                                          "results/checkpoints"}


def test_every_results_path_the_readme_quotes_is_committed():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.splitlines()
    # Folders the README names as places things go (not as evidence): checkpoints and a run id pattern.
    generic = {"results/checkpoints", "results/runs", "results/runs/<run id>", "results/baselines"}
    missing = [path for path in sorted(quoted_results_paths((ROOT / "README.md").read_text()))
               if path not in generic and "<" not in path
               and not any(t == path or t.startswith(path + "/") for t in tracked)]
    assert not missing, f"quoted by the README but not committed: {missing}"
