"""The CLI run as a user runs it: `python -m bench ...` in a process of its own, in a terminal wide
enough that rich never cuts a table the test reads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def bench(*args, cwd: Path | None = None, env_extra: dict | None = None, module: str = "bench") -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", **(env_extra or {})}
    # errors="replace": a refused command may echo a user's undecodable bytes back in its one line
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=900, env=env, check=False, errors="replace")
