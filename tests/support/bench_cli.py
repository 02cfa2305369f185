"""The CLI run as a user runs it, for the tests: `bench(...)` is `python -m bench ...` with the test's
environment and a terminal wide enough that rich never cuts a table the test reads. It runs in a forked
child of one process per test worker that has imported the CLI once (tests/support/cli_server.py): a fresh
interpreter pays ~2 s of imports per command. `fresh=True` (or an old module path) runs it in an
interpreter of its own, for the tests about a process's own start."""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_server: subprocess.Popen | None = None


def bench(*args, cwd: Path | None = None, env_extra: dict | None = None, module: str = "bench",
          fresh: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200", **(env_extra or {})}
    argv = [str(a) for a in args]
    if fresh or module != "bench":
        # errors="replace": a refused command may echo a user's undecodable bytes back in its one line
        return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=cwd,
                              timeout=900, env=env, check=False, errors="replace")
    with tempfile.TemporaryDirectory() as logs:
        return _forked(argv, Path(cwd or os.getcwd()), Path(logs), env)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its contents; a run folder's lock file is the writer's, not a result."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != ".lock"} | {str(p.relative_to(root)) + "/": b"" for p in root.rglob("*") if p.is_dir()}


def only_run(results: Path) -> Path:
    """The one run folder a test's --results root holds."""
    (run,) = list((results / "runs").iterdir())
    return run


def _fork_server() -> subprocess.Popen:
    global _server
    if _server is None or _server.poll() is not None:
        _server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cli_server.py"))],
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        atexit.register(_stop, _server)
    return _server


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is None:
        server.stdin.close()
        server.wait(timeout=60)


def _forked(argv: list[str], cwd: Path, logs: Path, env: dict) -> subprocess.CompletedProcess:
    server = _fork_server()
    job = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(logs / "stdout"), "stderr": str(logs / "stderr")}
    server.stdin.write(json.dumps(job) + "\n")
    server.stdin.flush()
    code = json.loads(server.stdout.readline())["returncode"]
    read = lambda name: (logs / name).read_text(errors="replace")  # noqa: E731
    return subprocess.CompletedProcess(argv, code, read("stdout"), read("stderr"))
