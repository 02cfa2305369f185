"""Other processes on the GPU: what a CUDA case's timing shares the device with, as nvidia-smi lists the
compute processes. A case timed beside one is flagged `gpu_shared` (bench.measure.kernel and .model), and a run
that starts beside one says so (bench.runner).

Where this process cannot be told apart from the others it answers None rather than a guess: nvidia-smi
inside a container may list processes under the host's pids, so a listing that holds processes but not
this one (which holds a CUDA context whenever it asks during a CUDA run) is read as "cannot say"."""

from __future__ import annotations

import os
import subprocess

import psutil

QUERY = ["nvidia-smi", "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits"]
TIMEOUT_S = 10.0


def parse(listing: str) -> list[dict]:
    """nvidia-smi's CSV lines -> [{pid, name, memory_mib}] (memory None where it says [N/A])."""
    out = []
    for line in listing.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        memory = fields[-1]
        out.append({"pid": int(fields[0]), "name": ", ".join(fields[1:-1]),
                    "memory_mib": int(memory) if memory.isdigit() else None})
    return out


def ours() -> set[int]:
    """This process and everything under it (a step's workers, a compile pool)."""
    me = psutil.Process()
    return {me.pid, *(child.pid for child in me.children(recursive=True))}


def gpu_neighbours(holds_context: bool = True) -> list[dict] | None:
    """The compute processes on this machine's GPUs other than this one and its children; None where
    nvidia-smi is missing, fails, or lists processes among which this one (holding a CUDA context) is
    not to be found."""
    try:
        done = subprocess.run(QUERY, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    listed = parse(done.stdout)
    mine = ours()
    if holds_context and listed and os.getpid() not in {p["pid"] for p in listed}:
        return None  # another pid namespace: the listing cannot tell us from the others
    return [p for p in listed if p["pid"] not in mine]


def describe(neighbours: list[dict]) -> str:
    shown = ", ".join(f"{p['pid']} ({p['name']}" + (f", {p['memory_mib']} MiB)" if p["memory_mib"] is not None else ")")
                      for p in neighbours[:5])
    more = f" and {len(neighbours) - 5} more" if len(neighbours) > 5 else ""
    return f"{len(neighbours)} other process(es) on the GPU: {shown}{more}"


def flag_if_shared(load_fields: dict) -> dict:
    """A CUDA row's load fields (bench.machine.contention.Load.row_fields), flagged `gpu_shared` and
    contended where another process holds the device now: its kernels took turns with the row's, like a
    busy CPU's."""
    if not gpu_neighbours():
        return load_fields
    flags = ",".join(f for f in (load_fields.get("load_flags") or "", "gpu_shared") if f)
    return {**load_fields, "load_flags": flags, "contended": True}
