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

from bench.core.errors import UserError, read_text, writable_folder

LOCK_FILE = ".lock"
ENV_FILE = "env.json"
SUITE_FILE = "suite.yaml"


def refuse_links(folder: Path, what: str) -> None:
    """One line naming the first symbolic link inside `folder` (at any depth), if it holds one. Run
    folders travel between people and machines: a link in one (`kernels.csv -> ../../victim`,
    `report -> /elsewhere`) would make condbench, which may run as root, write outside the folder or copy
    what lies behind the link into a merged run. The folder itself may be a link: its path is the user's."""
    if not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder):  # does not descend into linked folders; they are refused
        for name in sorted((*dirs, *files)):
            path = Path(root) / name
            if path.is_symlink():
                raise UserError(f"{path}: is a symbolic link; condbench writes nothing through links in {what} "
                                "and reads nothing behind them (replace it with what it points to)")


def open_no_follow(path: Path, flags: int, mode: int = 0o644) -> int:
    """os.open that refuses a symbolic link in the last place (O_NOFOLLOW): a link put there after the
    folder was checked is still not followed."""
    try:
        return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UserError(f"{path}: is a symbolic link; condbench writes nothing through links") from None
        raise


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
        write_json_atomic(staging / ENV_FILE, {"suite": suite_name, "shard": [index, count], "measured": False})
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


def refuse_if_written(folder: Path) -> None:
    """One line where another process holds the folder's writer lock: before a resume measures anything
    (the machine-load check's warning would bury the line, and the busy CPU may be that writer's)."""
    if (writer := writer_of(folder)) is not None:
        raise UserError(_being_written(folder, writer))


def _being_written(folder: Path, holder: str) -> str:
    return f"{folder}: {holder} is writing this run; wait for it to finish"


@contextlib.contextmanager
def owned(folder: Path) -> Iterator[IO[str]]:
    """Holds the folder's writer lock; a second writer gets one line naming the first."""
    try:
        handle = os.fdopen(open_no_follow(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_APPEND), "a+")
    except OSError as exc:
        raise UserError(f"{folder}: cannot open its lock file: {exc.strerror or exc}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(_being_written(folder, holder)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield handle
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def writer_of(folder: Path) -> str | None:
    """Who holds the folder's writer lock now ("pid 123"), or None when no process is writing it."""
    path = folder / LOCK_FILE
    if not path.is_file() or path.is_symlink():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "another process"
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


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
    except RecursionError:
        raise UserError(f"{path}: nested too deep to be a run's environment; restore it or start a new run") from None
    if not isinstance(env, dict):
        raise UserError(f"{path}: holds a JSON {type(env).__name__}, not the run's environment object")
    if problem := env_problem(env):
        raise UserError(f"{path}: damaged ({problem}); restore it or start a new run")
    shard = env.get("shard", [0, 1])
    if not (isinstance(shard, list) and len(shard) == 2 and all(type(v) is int for v in shard)
            and 0 <= shard[0] < shard[1]):
        raise UserError(f"{path}: shard must be [i, n] with 0 <= i < n, got {shard!r}")
    return env


# The entries of env.json that condbench reads back, and the types it reads them as: a hand-edited or
# damaged file with `peaks: 3` must be one line, not a traceback in the middle of a report.
ENV_TYPES: dict[str, tuple[type, ...]] = {
    "suite": (str,), "cpu_model": (str, type(None)), "cpu_capability": (str, type(None)), "torch": (str,),
    "torch_threads": (int,), "gpu": (dict, type(None)), "peaks": (dict,), "wall_seconds": (list,),
    "load_at_start": (dict,), "load_at_resumes": (list,), "case_filter": (list, type(None)), "profile": (bool,),
    "partial": (list,), "merged_from": (list,), "shard_envs": (list,), "copy_bandwidth_Bps": (dict,),
    "measured": (bool,),
}


def measured(env: dict) -> bool:
    """Whether the environment was measured (fingerprint, peaks): `measured` says so since it exists; a
    folder from before it counts as measured where its copy bandwidth, measured last, is there."""
    return env["measured"] if "measured" in env else "copy_bandwidth_Bps" in env


def env_problem(env: dict) -> str:
    """What in a run's environment has a type condbench cannot read, or ""."""
    for key, types in ENV_TYPES.items():
        value = env.get(key)
        if key in env and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            return f"{key} is {type(value).__name__} {str(value)[:40]!r}, not {' or '.join(t.__name__ for t in types)}"
    if any(not isinstance(w, dict) for w in env.get("wall_seconds", [])):
        return "wall_seconds holds something other than one object per invocation"
    return ""


def resumable(folder: Path) -> tuple[str, dict | None]:
    """(suite text, env or None) of a run folder to resume, or one line saying why it is not one."""
    if not folder.exists():
        raise UserError(f"{folder}: no such run folder")
    if not folder.is_dir():
        raise UserError(f"{folder}: is a file, not a run folder")
    if not (folder / SUITE_FILE).is_file():
        raise UserError(f"{folder}: not a run folder to resume (no {SUITE_FILE})")
    refuse_links(folder, "a run folder")
    return read_text(folder / SUITE_FILE, "suite file"), read_env(folder)
