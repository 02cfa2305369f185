"""A kernel row's measurement flags as the derived tables and plots carry them: the load flags
(bench.machine.contention: busy, oversubscribed, steal, noisy; bench.machine.gpu_neighbours: gpu_shared)
and above_roofline (bench.measure.kernel). A figure from a flagged row is marked wherever a summary shows
it, and a summary that prefers a clean row over a faster flagged one says so."""

from __future__ import annotations

from collections.abc import Iterable

FLAGGED = " !"  # after a figure from a flagged row
FLAGGED_NOTE = ("!: timed on a busy machine, noisy, or faster than the roofline allows (the row's flags; its "
                "sweep's table says which)")
PASSED_OVER = " ?"  # after the fastest clean row where a flagged one was faster
PASSED_OVER_NOTE = "?: a faster case at another block size was flagged; the fastest clean one is shown"


def is_flagged(row: dict | None) -> bool:
    """Whether the row carries any flag."""
    flags = (row or {}).get("load_flags")
    return isinstance(flags, str) and bool(flags)


def flag_mark(row: dict | None) -> str:
    """The marks a summary cell carries after its figure: FLAGGED, PASSED_OVER, or ""."""
    return (FLAGGED if is_flagged(row) else "") + (PASSED_OVER if (row or {}).get("passed_over") is True else "")


def flag_notes(rows: Iterable[dict | None]) -> list[str]:
    """The notes for the marks these cells carry, each once."""
    marks = "".join(flag_mark(r) for r in rows)
    return [note for mark, note in ((FLAGGED, FLAGGED_NOTE), (PASSED_OVER, PASSED_OVER_NOTE)) if mark in marks]
