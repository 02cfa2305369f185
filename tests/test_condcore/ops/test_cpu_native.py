"""The C++ large-batch CPU kernel: built here, used by the torch backend, equal to its torch-ops twin."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from condcore.ops import block_sparse_linear, frozen_weights
from condcore.ops.cpu import native as cpu_native
from condcore.ops.kernel_log import kernels_used
from condcore.problems import check_output, make_problem


def test_it_builds_on_this_machine():
    # CI machines have g++ and ninja: a failed build must show, not fall back unnoticed.
    assert cpu_native.status() == f"native (source {cpu_native.source_key()})"


def test_off_switch(monkeypatch):
    monkeypatch.setenv("CONDBENCH_NATIVE", "0")
    assert cpu_native.status().startswith("off")
    p = make_problem(8, 64, 64, 16)
    assert not cpu_native.applies(p.x)
    with kernels_used() as names:
        block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")
    assert names == ["grouped-torch"]


@pytest.mark.parametrize("counts", [[5, 1, 9, 3, 3, 0, 7], [4] * 16, [0, 0, 0], [100, 1, 1, 1, 1]])
@pytest.mark.parametrize("n_bins", [1, 2, 3])
def test_balanced_bins_deal_every_block_once_within_one_block_of_even(counts, n_bins):
    bins = cpu_native.balanced_bins(counts, n_bins)
    assert len(bins) == n_bins
    assert sorted(j for b in bins for j in b) == list(range(len(counts)))
    loads = [sum(counts[j] for j in b) for b in bins]
    assert max(loads) - min(loads) <= max(counts)


@pytest.fixture
def spy(monkeypatch):
    """Counts calls into the C++ kernel, so a test knows it ran (and not the fallback)."""
    module = cpu_native._load()
    assert module is not None, cpu_native.status()
    calls = []

    def grouped_forward(*args):
        calls.append(args)
        return module.grouped_forward(*args)

    monkeypatch.setattr(cpu_native, "_load", lambda: SimpleNamespace(grouped_forward=grouped_forward))
    return calls


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("frozen", [False, True], ids=["plain", "packed"])
def test_native_kernel_runs_and_matches_the_reference(spy, threads, dtype, frozen):
    p = make_problem(70, 256, 384, 32, in_density=0.5, out_density=0.3, dtype=dtype,
                     generator=torch.Generator().manual_seed(threads))
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with frozen_weights() if frozen else contextlib.nullcontext():
            out = torch.full((70, 384), float("nan"), dtype=dtype)
            y = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped", out=out)
    finally:
        torch.set_num_threads(saved)
    assert len(spy) == 1 and len(spy[0][5]) == threads  # one bin of blocks per thread
    assert y.data_ptr() == out.data_ptr()
    _, error = check_output(p, y)
    assert not error


def test_mixed_precision_and_edge_masks(spy):
    gen = torch.Generator().manual_seed(0)
    p = make_problem(33, 128, 128, 32, out_density=0.5, dtype=torch.bfloat16, generator=gen)
    weight, bias = p.weight.float(), p.bias.float()  # fp32 weight with bf16 x, as under autocast
    for out_mask in (p.out_mask, torch.zeros_like(p.out_mask), torch.ones_like(p.out_mask)):
        y = block_sparse_linear(p.x, weight, bias, in_mask=p.in_mask, out_mask=out_mask, block_size=32,
                                backend="torch", regime="grouped")
        want = block_sparse_linear(p.x, weight, bias, in_mask=p.in_mask, out_mask=out_mask, block_size=32,
                                   backend="reference")
        torch.testing.assert_close(y, want, rtol=2e-2, atol=2e-2)
    assert len(spy) == 3
    assert torch.count_nonzero(block_sparse_linear(p.x, weight, bias, out_mask=torch.zeros_like(p.out_mask),
                                                   block_size=32, backend="torch", regime="grouped")) == 0


def test_native_and_torch_ops_agree_at_benchmark_shape(monkeypatch):
    p = make_problem(1024, 2048, 2048, 128, in_density=None, out_density=0.1, generator=torch.Generator().manual_seed(0))
    native = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")
    monkeypatch.setenv("CONDBENCH_NATIVE", "0")
    ops = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")
    torch.testing.assert_close(native, ops, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("grad", ["enabled", "no_grad", "inference_mode"])
def test_native_kernel_under_every_grad_mode_and_through_autograd(spy, grad):
    """Grad mode is thread-local: the kernel's worker threads must not record autograd history (they
    once deadlocked on it when called with grad enabled on the main thread)."""
    p = make_problem(48, 128, 128, 32, out_density=0.5, generator=torch.Generator().manual_seed(0))
    weight = p.weight.clone().requires_grad_(grad == "enabled")
    context = {"enabled": contextlib.nullcontext(), "no_grad": torch.no_grad(), "inference_mode": torch.inference_mode()}
    with context[grad]:
        y = block_sparse_linear(p.x, weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")
    torch.testing.assert_close(y.detach().double(), p.reference(), rtol=1e-4, atol=1e-4)
    if grad == "enabled":
        y.sum().backward()
        assert weight.grad is not None and torch.isfinite(weight.grad).all()
    assert spy


def test_status_without_building(monkeypatch):
    monkeypatch.setattr(cpu_native, "_module", None)
    monkeypatch.setattr(cpu_native, "_error", None)
    assert cpu_native.status(build=False).startswith("not built")
    assert cpu_native._module is None  # asking did not build or load it


def test_a_failed_build_warns_once_and_falls_back_to_torch_ops(monkeypatch):
    def broken_build(folder):
        raise RuntimeError("Error building extension:\nfoo.cpp:1:1: error: no compiler here\nninja: build stopped")

    monkeypatch.setattr(cpu_native, "_module", None)
    monkeypatch.setattr(cpu_native, "_error", None)
    monkeypatch.setattr(cpu_native, "_built", lambda folder: False)
    monkeypatch.setattr(cpu_native, "_build", broken_build)
    p = make_problem(40, 128, 128, 32, out_density=0.5, generator=torch.Generator().manual_seed(0))
    with pytest.warns(RuntimeWarning, match="error: no compiler here"):
        y = block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")
    assert not check_output(p, y)[1]
    assert cpu_native.status() == "unavailable (RuntimeError: foo.cpp:1:1: error: no compiler here)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning: the failure is remembered
        block_sparse_linear(p.x, p.weight, p.bias, **p.kwargs(), backend="torch", regime="grouped")


def test_builds_are_keyed_by_source_version():
    """Two checkouts of different versions never share a build folder (one loaded the other's build)."""
    assert cpu_native.source_key() in str(cpu_native.build_directory())
    assert cpu_native._load() is not None
    assert cpu_native.source_key() in cpu_native._module.__file__


def test_a_stale_torch_lock_left_by_a_killed_build_does_not_hang(monkeypatch):
    assert cpu_native._load() is not None
    (cpu_native.build_directory() / "lock").write_text("")  # as a build killed midway leaves it
    monkeypatch.setattr(cpu_native, "_module", None)
    monkeypatch.setattr(cpu_native, "_error", None)
    assert cpu_native._load() is not None
    assert not (cpu_native.build_directory() / "lock").exists()


def test_a_live_builder_is_waited_for_then_given_up_on_with_one_line(monkeypatch):
    import fcntl

    folder = cpu_native.build_directory()
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(cpu_native, "_module", None)
    monkeypatch.setattr(cpu_native, "_error", None)
    monkeypatch.setattr(cpu_native, "BUILD_WAIT_S", 1.0)
    with open(folder.with_name(folder.name + ".flock"), "a") as other:  # its own open file: a second holder
        fcntl.flock(other, fcntl.LOCK_EX)
        with pytest.warns(RuntimeWarning, match="another process has been building it"):
            assert cpu_native._load() is None
    assert cpu_native.status().startswith("unavailable (TimeoutError")


BUILD_THAT_SPAWNS = """
import subprocess, sys, time
p = subprocess.Popen(["sleep", "300"])
open(PID_FILE, "w").write(str(p.pid))
time.sleep(300)
"""

INTERRUPTED_BUILDER = """
import signal, sys
from condcore.ops.cpu import native as cpu_native
# A shell's background job ignores SIGINT, and so would this child: Ctrl-C is what is tested.
signal.signal(signal.SIGINT, signal.default_int_handler)
cpu_native._BUILD_SCRIPT = sys.argv[2].replace("PID_FILE", repr(sys.argv[1]))
try:
    cpu_native._build(cpu_native.build_directory())
except KeyboardInterrupt:
    sys.exit(130)
"""


def test_ctrl_c_during_the_build_leaves_no_compiler_running(tmp_path):
    """The build's child and everything it started (ninja, g++: here a `sleep`) die with it."""
    import signal
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "grandchild.pid"
    proc = subprocess.Popen([sys.executable, "-c", INTERRUPTED_BUILDER, str(pid_file), BUILD_THAT_SPAWNS],
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    grandchild = int(pid_file.read_text())
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 130
    deadline = time.monotonic() + 10
    while alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(grandchild)


def alive(pid: int) -> bool:
    """Running, not gone nor a zombie (killed, not yet reaped: in a container PID 1 may never reap it)."""
    from pathlib import Path

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return False
    return fields[0] != "Z"


def test_a_second_checkout_of_the_same_source_loads_the_build_without_rebuilding(tmp_path):
    """A git revision exported beside the working tree (bench continuous) shares its build: loading it
    from another path neither rebuilds nor touches the built module."""
    assert cpu_native._load() is not None, cpu_native.status()
    built = cpu_native.build_directory() / f"{cpu_native._name()}.so"
    before = built.stat().st_mtime_ns
    copy = tmp_path / "checkout"
    shutil.copytree(Path(cpu_native.__file__).parents[2], copy / "condcore",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = "from condcore.ops.cpu import native as cpu_native; print(cpu_native.__file__); print(cpu_native.status())"
    done = subprocess.run([sys.executable, "-c", script], cwd=copy, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(copy)}, check=False)
    assert done.returncode == 0, done.stderr
    where, status = done.stdout.split("\n")[:2]
    assert where.startswith(str(copy)) and status == cpu_native.status()
    assert "building" not in done.stderr
    assert built.stat().st_mtime_ns == before
