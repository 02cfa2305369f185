"""Where a run's wall time goes: named phases and the total, for env.json and the report."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class PhaseClock:
    """Wall seconds per named phase since the clock was made; a phase entered twice adds up."""

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._phases: dict[str, float] = {}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self._phases[name] = self._phases.get(name, 0.0) + time.perf_counter() - begin

    def seconds(self) -> dict[str, float]:
        """Each phase and `total` (everything since the clock was made, the phases and what lies between)."""
        return {**{name: round(s, 2) for name, s in self._phases.items()},
                "total": round(time.perf_counter() - self._start, 2)}
