"""Hardware and kernel counters around a region of this process, from Linux `perf stat`, where it works.

perf attaches to this process (all its threads) disabled, and is switched on and off through its
control pipe exactly around the region, so the OpenMP threads' spinning before and after is not
counted. A machine without perf, or one whose virtual machine hides the counters (perf says
"<not supported>"), gives the counters it has and a note for the rest; nothing fails.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

EVENTS = ("cycles", "instructions", "cache-references", "cache-misses", "task-clock", "context-switches",
          "page-faults")
ATTACH_TIMEOUT_S = 10.0


@dataclass
class Counts:
    """What perf counted over the region: event -> count (task-clock in ms), and why any are missing."""

    values: dict[str, float] = field(default_factory=dict)
    note: str = ""


def _read_ack(fd: int, timeout: float) -> bool:
    import select

    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready) and os.read(fd, 16).startswith(b"ack")


@contextlib.contextmanager
def counting(events: tuple[str, ...] = EVENTS) -> Iterator[Counts]:
    """Counts `events` while the block runs; the result is filled in when it exits."""
    counts = Counts()
    if shutil.which("perf") is None:
        counts.note = "perf is not installed (Debian: linux-perf); no counters"
        yield counts
        return
    ctl_read, ctl_write = os.pipe()
    ack_read, ack_write = os.pipe()
    child = subprocess.Popen(
        ["perf", "stat", "-x", ",", "-D", "-1", "--control", f"fd:{ctl_read},{ack_write}", "-e", ",".join(events),
         "-p", str(os.getpid())],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, pass_fds=(ctl_read, ack_write))
    os.close(ctl_read)
    os.close(ack_write)
    try:
        os.write(ctl_write, b"enable\n")
        attached = _read_ack(ack_read, ATTACH_TIMEOUT_S)
        try:
            yield counts
        finally:
            if attached:
                os.write(ctl_write, b"disable\n")
                _read_ack(ack_read, ATTACH_TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        try:
            _, err = child.communicate(timeout=ATTACH_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
        os.close(ctl_write)
        os.close(ack_read)
    if not attached:
        counts.note = f"perf could not attach: {_first_line(err)}"
        return
    _parse(err, events, counts)


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "no output")


def _parse(err: str, events: tuple[str, ...], counts: Counts) -> None:
    unsupported = []
    for line in err.splitlines():
        parts = line.split(",")
        if len(parts) < 3 or parts[2] not in events:
            continue
        value, event = parts[0], parts[2]
        if value.startswith("<"):  # <not supported>, <not counted>
            unsupported.append(event)
            continue
        with contextlib.suppress(ValueError):
            counts.values[event] = float(value)
    missing = [e for e in events if e not in counts.values and e not in unsupported]
    notes = []
    if unsupported:
        notes.append(f"not supported here (a virtual machine may hide them): {', '.join(unsupported)}")
    if missing:
        notes.append(f"perf gave no count for {', '.join(missing)}: {_first_line(err)}")
    counts.note = "; ".join(notes)
