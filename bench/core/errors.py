"""A user's mistake as one line: the error every layer raises (the CLI prints it, exit code 2), and the
file checks that raise it."""

from __future__ import annotations

import tempfile
from pathlib import Path


class UserError(Exception):
    """A mistake of the user's (bad argument, missing file, bad suite): one line, exit code 2."""


def last_line(stderr: str, otherwise: str) -> str:
    """What a failed subprocess said last (its error, under any traceback), or `otherwise` if nothing."""
    return (stderr.strip().splitlines() or [otherwise])[-1]


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file's contents, or one line saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text {what} (byte {exc.start} is 0x{exc.object[exc.start]:02x})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None


def writable_folder(path: Path, flag: str) -> Path:
    """path as a folder this process can write into (created if missing), or one line saying why not."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path}: is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        # os.access says yes to root on a read-only mount: only a real write tells.
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot write there: {exc.strerror or exc}") from None
    return path
