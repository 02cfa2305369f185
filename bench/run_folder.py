"""A run folder's life: made whole or not at all inside the results root, owned by one writer at a time,
its environment written atomically and re-measured on resume when a kill came before it was written.

A new folder is staged under a hidden name with its suite and shard, then renamed into place: a folder
under runs/ always holds what `--resume` needs. The writer holds an OS lock (flock) on `.lock` in the
folder for as long as it runs; the kernel drops the lock when the process dies, however it dies, so a
stale lock never blocks a resume.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

from bench.cli_common import UserError, read_text, writable_folder

LOCK_FILE = ".lock"
ENV_FILE = "env.json"
SUITE_FILE = "suite.yaml"
# Keys of a full environment: a folder whose env.json lacks them was killed before it was measured.
MEASURED_KEY = "copy_bandwidth_Bps"


def write_json_atomic(path: Path, value: object) -> None:
    """Written to a temporary file beside it, then renamed over it: a kill leaves the old file or the new one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it private; results are for everyone who may read the folder
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(value, indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_run_folder(results: Path, suite_name: str, suite_text: str, shard: tuple[int, int]) -> Path:
    """A new run folder results/runs/<suite>-<time>[-shard..][-n] holding the suite and a provisional
    env.json (suite, shard); its name is unique even for runs started in the same second."""
    runs = writable_folder(writable_folder(results, "--results") / "runs", "--results")
    index, count = shard
    stem = f"{suite_name}-{datetime.now():%Y%m%d-%H%M%S}" + (f"-shard{index}of{count}" if count > 1 else "")
    staging = Path(tempfile.mkdtemp(dir=runs, prefix=".new-"))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private
        (staging / SUITE_FILE).write_text(suite_text, encoding="utf-8")
        write_json_atomic(staging / ENV_FILE, {"suite": suite_name, "shard": [index, count]})
        for n in itertools.count(1):
            folder = runs / (stem if n == 1 else f"{stem}-{n}")
            # The suite name is validated, but the folder must stay inside --results whatever it says.
            if folder.resolve().parent != runs.resolve():
                raise UserError(f"suite name {suite_name!r} would place the run outside {runs}")
            try:
                # rename refuses a non-empty target: two runs started in the same second get two folders.
                if not folder.exists():
                    os.rename(staging, folder)
                    return folder
            except OSError as exc:
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def owned(folder: Path) -> Iterator[IO[str]]:
    """Holds the folder's writer lock; a second writer gets one line naming the first."""
    try:
        handle = open(folder / LOCK_FILE, "a+")
    except OSError as exc:
        raise UserError(f"{folder}: cannot open its lock file: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(f"{folder}: {holder} is writing this run; wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield handle
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_env(folder: Path) -> dict | None:
    """The folder's env.json, None when it is missing (a kill before it was written), or one line saying
    why it cannot be used."""
    path = folder / ENV_FILE
    if not path.exists():
        return None
    try:
        env = json.loads(read_text(path, "environment file"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); restore it or start a new run") from None
    if not isinstance(env, dict):
        raise UserError(f"{path}: holds a JSON {type(env).__name__}, not the run's environment object")
    shard = env.get("shard", [0, 1])
    if not (isinstance(shard, list) and len(shard) == 2 and all(type(v) is int for v in shard)
            and 0 <= shard[0] < shard[1]):
        raise UserError(f"{path}: shard must be [i, n] with 0 <= i < n, got {shard!r}")
    return env


def resumable(folder: Path) -> tuple[str, dict | None]:
    """(suite text, env or None) of a run folder to resume, or one line saying why it is not one."""
    if not folder.exists():
        raise UserError(f"{folder}: no such run folder")
    if not folder.is_dir():
        raise UserError(f"{folder}: is a file, not a run folder")
    if not (folder / SUITE_FILE).is_file():
        raise UserError(f"{folder}: not a run folder to resume (no {SUITE_FILE})")
    return read_text(folder / SUITE_FILE, "suite file"), read_env(folder)
