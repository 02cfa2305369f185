import os
from pathlib import Path

import pytest
import torch
from support import file_seconds

# Triton reads TRITON_INTERPRET when a kernel is decorated, so it must be set before condcore's Triton
# modules are imported: without CUDA the Triton kernels run (slowly) on the CPU interpreter.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
if os.environ.get("TRITON_INTERPRET") == "1":
    # Decorated now, in interpreter mode: a test that unsets TRITON_INTERPRET (to check the refusal)
    # would otherwise leave the first import to happen without it, breaking every later Triton test.
    import condcore.ops.triton.grouped  # noqa: F401
    import condcore.ops.triton.union  # noqa: F401

# The machine measurements of every run, at a tiny run's scale: each row's load window is not topped up to
# half a second by sleeping (bench/machine/contention.py), STREAM streams 16 MiB arrays, not 256
# (bench/machine/peaks.py), and a cold sample's flush streams at most 16 MiB, not twice the last-level
# cache (condcore/timing.py). At full scale they cost seconds of each of the tests' ~160 runs (a flush
# alone 0.1 s per timed call where sysfs reports a 480 MiB L3) and are read by no test but those about
# them, which ask for the real ones (test_contention, test_machine_peaks, test_cache_state).
os.environ.setdefault("CONDBENCH_LOAD_WINDOW_S", "0")
os.environ.setdefault("CONDBENCH_STREAM_MBYTES", "16")
os.environ.setdefault("CONDBENCH_FLUSH_MBYTES", "16")

HAS_CUDA = torch.cuda.is_available()

# Three xdist workers share two cores: at torch's default of one thread per core, each worker's OpenMP
# team spins at its barriers while the others hold the cores, and a 3-second training took 70 in the
# suite. One thread per worker process; a test about threads sets its own, and a run sets each case's.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    # The longest files first (tests/file_seconds.json; files it does not know last, in their order):
    # xdist then hands them out in this order (pytest_xdist_make_scheduler below).
    seconds = file_seconds.read()
    tests_root = Path(__file__).parent
    order = {}
    for item in items:
        name = item.path.relative_to(tests_root).as_posix() if item.path.is_relative_to(tests_root) else str(item.path)
        order.setdefault(item.path, (-seconds.get(name, 0.0), len(order)))
    items.sort(key=lambda item: order[item.path])  # stable: a file's tests keep their order
    if HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip_gpu)


def pytest_xdist_make_scheduler(config, log):
    """--dist loadfile, the files handed out in collection order (the longest first) rather than xdist's
    default of the files with the most tests first, which left the minute-long files of a few tests
    for the end."""
    from xdist.scheduler import LoadFileScheduling

    if config.getoption("dist") != "loadfile":
        return None
    config.option.loadscopereorder = False
    return LoadFileScheduling(config, log)


@pytest.fixture
def rng() -> torch.Generator:
    """A fresh, seeded generator per test: inputs are random but each failure reproduces."""
    return torch.Generator().manual_seed(1234)
