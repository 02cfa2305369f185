"""What else is using this run's CPUs: measured around every timed case, so a busy machine is flagged,
not reported as a speedup.

Counted on the CPUs this process may run on (its affinity), from the kernel's per-CPU times (psutil):
the busy time of those CPUs minus this process's own CPU time is what other processes used, in cores;
steal is time the hypervisor gave to other guests. The pathology this exists for: another process
holding one of two cores while the run uses two OpenMP threads, so that both threads take turns on the
free core and every timing lands on a multiple of the scheduler's slice (medians of 8 / 16 / 24 ms
where 4.7 ms was right), each row still saying "ok".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass

import psutil

# Thresholds, in cores: a fifth of a core of other work over a case already moves memory-bound timings
# on a 2-core machine; steal above 5% of a core means the host is oversubscribed.
BUSY_CORES = 0.2
STEAL_CORES = 0.05
# Dense rounds spreading more than this (IQR / median) are noisy whatever the cause.
NOISY_SPREAD = 0.10
# The kernel counts CPU time in ticks of 10 ms per CPU: over a shorter window a measured load is mostly
# rounding, so a short case's window is topped up (sleeping) to this length: +-0.04 cores on 2 CPUs.
# The environment's CONDBENCH_LOAD_WINDOW_S, read at each case, changes it (the tests' tiny runs: 0).
MIN_WINDOW_S = 0.5


def run_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux: every CPU
        return list(range(psutil.cpu_count() or 1))


@dataclass(frozen=True)
class Snapshot:
    wall: float
    busy: float  # CPU seconds the run's CPUs spent neither idle, waiting for I/O nor stolen
    steal: float
    own: float  # CPU seconds of this process and its finished children


def snapshot() -> Snapshot:
    cpus = run_cpus()
    per_cpu = psutil.cpu_times(percpu=True)
    busy = steal = 0.0
    for i in cpus:
        if i >= len(per_cpu):
            continue
        t = per_cpu[i]
        stolen = getattr(t, "steal", 0.0)
        busy += sum(t) - t.idle - getattr(t, "iowait", 0.0) - stolen - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        steal += stolen
    own = psutil.Process().cpu_times()
    return Snapshot(time.monotonic(), busy, steal, own.user + own.system + own.children_user + own.children_system)


@dataclass(frozen=True)
class Load:
    """What other processes and the hypervisor took from the run's CPUs over an interval, in cores."""

    others_cores: float
    steal_cores: float
    seconds: float

    @classmethod
    def between(cls, start: Snapshot, end: Snapshot) -> Load:
        wall = max(end.wall - start.wall, 1e-9)
        others = max(0.0, (end.busy - start.busy) - (end.own - start.own)) / wall
        return cls(others_cores=others, steal_cores=max(0.0, end.steal - start.steal) / wall, seconds=wall)

    def flags(self, threads: int, dense_spread: float | None = None) -> list[str]:
        """Why timings over this interval cannot be trusted; empty when nothing was seen."""
        flags = []
        free = len(run_cpus()) - self.others_cores
        if threads > free + 0.5:
            flags.append("oversubscribed")  # more threads than free cores: they take turns on one
        elif self.others_cores >= BUSY_CORES:
            flags.append("busy")
        if self.steal_cores >= STEAL_CORES:
            flags.append("steal")
        if dense_spread is not None and dense_spread > NOISY_SPREAD:
            flags.append("noisy")
        return flags

    def to_dict(self) -> dict:
        return {"others_cores": round(self.others_cores, 3), "steal_cores": round(self.steal_cores, 3)}

    def row_fields(self, threads: int, dense_spread: float | None = None) -> dict:
        """What a result row records of the load over its timing; `contended` when others took CPU time
        (a noisy spread alone is not contention)."""
        flags = self.flags(threads, dense_spread)
        return {**self.to_dict(), "load_flags": ",".join(flags), "contended": any(f != "noisy" for f in flags)}


def load_since(start: Snapshot) -> Load:
    """The load from start until now, the window topped up to MIN_WINDOW_S by sleeping if shorter."""
    short = float(os.environ.get("CONDBENCH_LOAD_WINDOW_S", MIN_WINDOW_S)) - (time.monotonic() - start.wall)
    if short > 0:
        time.sleep(short)
    return Load.between(start, snapshot())


def measure_load(seconds: float = 1.0) -> Load:
    """The load over the next `seconds`, this process sleeping meanwhile."""
    start = snapshot()
    time.sleep(seconds)
    return Load.between(start, snapshot())


def free_cores(load: Load) -> int:
    """Cores not taken by other processes (at least one)."""
    return max(1, int(len(run_cpus()) - load.others_cores + 0.25))


def wait_quiet(limit_s: float, on_wait=None) -> tuple[Load, float]:
    """Samples the load each second until other processes use less than BUSY_CORES, at most limit_s
    seconds; returns the last load and the seconds waited."""
    started = time.monotonic()
    while True:
        load = measure_load(1.0)
        waited = time.monotonic() - started
        if load.others_cores < BUSY_CORES or waited >= limit_s:
            return load, waited
        if on_wait is not None:
            on_wait(load, waited)


def describe(load: Load, threads: int) -> str:
    cpus = len(run_cpus())
    text = f"other processes are using {load.others_cores:.2f} of this run's {cpus} CPU(s)"
    if load.steal_cores >= STEAL_CORES:
        text += f", the hypervisor steals {load.steal_cores:.2f}"
    if "oversubscribed" in load.flags(threads):
        text += f"; {threads} threads will take turns on {cpus - load.others_cores:.1f} free core(s)"
    return text


# The neighbour dies with whoever started it (PR_SET_PDEATHSIG), even on a kill that runs no cleanup.
_BUSY_LOOP = """
import ctypes, os, signal, sys, time
try:
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
except (AttributeError, OSError):
    pass
parent, end = int(sys.argv[2]), time.monotonic() + float(sys.argv[1])
while time.monotonic() < end and os.getppid() == parent:
    pass
"""


def busy_process(seconds: float = 3600.0) -> subprocess.Popen:
    """Another process keeping one core busy for `seconds`, as a neighbour on a shared machine would
    (to test the guard, and to measure the regression check under load); it dies with this process."""
    return subprocess.Popen([sys.executable, "-c", _BUSY_LOOP, str(seconds), str(os.getpid())])
