"""The CLI run as a user runs it: `python -m bench ...` in a process of its own, in a terminal wide
enough that rich never cuts a table the test reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def bench(*args, cwd: Path | None = None, env_extra: dict | None = None, module: str = "bench") -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", **(env_extra or {})}
    # errors="replace": a refused command may echo a user's undecodable bytes back in its one line
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=900, env=env, check=False, errors="replace")


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its contents; a run folder's lock file is the writer's, not a result."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"} | {str(p.relative_to(root)) + "/": b"" for p in root.rglob("*") if p.is_dir()}


def run_forked(server: subprocess.Popen, argv: list[str], cwd: Path, logs: Path) -> subprocess.CompletedProcess:
    job = {"argv": argv, "cwd": str(cwd), "env": {"COLUMNS": "200"},
           "stdout": str(logs / "stdout"), "stderr": str(logs / "stderr")}
    server.stdin.write(json.dumps(job) + "\n")
    server.stdin.flush()
    code = json.loads(server.stdout.readline())["returncode"]
    read = lambda name: (logs / name).read_text(errors="replace")  # noqa: E731
    return subprocess.CompletedProcess(argv, code, read("stdout"), read("stderr"))
