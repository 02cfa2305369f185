"""Runs `python -m bench` commands for the tests in forked children of one process that has imported
the CLI (and torch) once: a fresh interpreter pays ~2 s of imports per command, which over the
bad-input corpus was minutes of every CI run.

Protocol: one JSON job per line on stdin ({"argv", "cwd", "env": the whole environment, "stdout",
"stderr"}), one JSON result per line on stdout ({"returncode"}). Each child changes to the job's folder, writes its stdout and
stderr (file descriptors 1 and 2) to the job's files and exits as `python -m bench` would: the code
main returns, argparse's exit code, or 1 with the traceback on stderr. This process runs no torch
work itself, so its children may fork safely (OpenMP's threads do not survive a fork).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

os.environ["COLUMNS"] = "200"  # before any rich console reads the width

import bench.cli.main as cli  # noqa: E402  (after COLUMNS)

# What commands import only when they need it, imported here once instead of in every child: the digits
# dataset (scikit-learn, ~1.8 s), the report's figures (matplotlib, with the backend the report picks),
# the C++ kernel's loader (setuptools through torch.utils.cpp_extension) and parquet. None starts a thread.
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot  # noqa: E402, F401
import pyarrow.parquet  # noqa: E402, F401
import sklearn.datasets  # noqa: E402, F401
import torch.utils.cpp_extension  # noqa: E402, F401

CHILD_TIMEOUT_S = 900  # as a command in a process of its own (bench_cli.bench(fresh=True)) may take


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def _child(job: dict) -> None:
    signal.alarm(CHILD_TIMEOUT_S)  # a hung command dies instead of hanging the test session
    os.chdir(job["cwd"])
    os.environ.clear()  # the test's environment, as a process it started would have it
    os.environ.update(job["env"])
    for fd, path in ((1, job["stdout"]), (2, job["stderr"])):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    try:
        code = cli.main(job["argv"]) or 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException:  # noqa: BLE001  (as the interpreter would: the traceback, exit 1)
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def serve() -> None:
    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(job)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(json.dumps({"returncode": code}), flush=True)


if __name__ == "__main__":
    serve()
