"""Named phases of a kernel or a model call, for profiling: free when nobody records them.

`phase("gather")` marks a region. When nothing records (the normal case, and every timed benchmark)
it returns one shared no-op context after one global read (0.3 us a phase here, with the `with`).
Two things can record:
- a `PhaseRecorder` (`recording(...)`, one per process at a time): wall time per phase path
  ("layer1/linear/gemm"), nested phases under their parent; the C++ kernel adds its threads' phases;
- torch.profiler, inside `tracing()`: each phase becomes a `condbench::<name>` range in its traces
  (`tracing()` says so because a profiler of all threads is not visible to the calling thread's
  `torch.autograd._profiler_enabled()`, and asking it costs a C call per phase).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch

_NOOP = contextlib.nullcontext()
_recorder: PhaseRecorder | None = None
_tracing = False  # phases open torch.profiler ranges (tracing())
_on = False  # _recorder or _tracing: the one test a phase makes when nothing records


class PhaseRecorder:
    """Seconds per phase path, summed over the calls recorded; `calls` holds each call's own."""

    def __init__(self) -> None:
        self.prefix = ""  # the open phases' path, "layer0/linear/", under which a new phase is recorded
        self._prefixes: list[str] = []
        self.current: dict[str, float] = {}  # the call being recorded
        self.calls: list[tuple[float, dict[str, float]]] = []  # (call wall seconds, its phases)

    def path(self, name: str) -> str:
        return self.prefix + name

    def add(self, path: str, seconds: float) -> None:
        self.current[path] = self.current.get(path, 0.0) + seconds

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """One whole call: its wall time and the phases recorded inside it."""
        self.current = {}
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.calls.append((time.perf_counter() - begin, self.current))
            self.current = {}


_clock = time.perf_counter


class _Phase:
    # Kept lean: a profiled decode call opens a dozen of these, and what they cost lands in its phases.
    __slots__ = ("name", "range", "begin", "path")

    def __init__(self, name: str) -> None:
        self.name = name
        self.range = None

    def __enter__(self) -> None:
        if _tracing:
            self.range = torch.autograd.profiler.record_function(f"condbench::{self.name}")
            self.range.__enter__()
        recorder = _recorder
        if recorder is not None:
            self.path = path = recorder.prefix + self.name
            recorder._prefixes.append(recorder.prefix)
            recorder.prefix = path + "/"
            self.begin = _clock()

    def __exit__(self, *exc) -> None:
        end = _clock()
        recorder = _recorder
        if recorder is not None:
            current = recorder.current
            current[self.path] = current.get(self.path, 0.0) + end - self.begin
            recorder.prefix = recorder._prefixes.pop()
        if self.range is not None:
            self.range.__exit__(*exc)


def phase(name: str):
    """A context marking the phase `name` of the current call (see the module docstring)."""
    return _Phase(name) if _on else _NOOP


def active() -> PhaseRecorder | None:
    """The recorder phases go to now, if any (the C++ kernel then times its threads' phases for it)."""
    return _recorder


@contextlib.contextmanager
def tracing() -> Iterator[None]:
    """Within this block phases open torch.profiler ranges (for a profiler started around it)."""
    global _tracing, _on
    previous, _tracing, _on = _tracing, True, True
    try:
        yield
    finally:
        _tracing = previous
        _on = _tracing or _recorder is not None


@contextlib.contextmanager
def recording(recorder: PhaseRecorder) -> Iterator[PhaseRecorder]:
    """Phases marked inside this block, on this thread, go to `recorder`."""
    global _recorder, _on
    previous, _recorder, _on = _recorder, recorder, True
    try:
        yield recorder
    finally:
        _recorder = previous
        _on = _tracing or _recorder is not None
