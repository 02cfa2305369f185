"""Other processes on the GPU, as nvidia-smi lists them: parsed, this process and its children left out,
nothing guessed where the listing cannot tell this process apart; a run's report counts the cases timed
beside one. A stand-in nvidia-smi on PATH plays the GPU machine (a CPU cannot run the real one)."""

from __future__ import annotations

import os

import pytest
from support.paths import REPO

from bench.machine import gpu_neighbours as gn
from bench.report.data import load_warning
from bench.store.results import load_run


def stand_in(tmp_path, monkeypatch, script: str) -> None:
    tool = tmp_path / "nvidia-smi"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")


def test_the_listing_is_parsed():
    listing = "1234, python3, 512\n  77, /usr/bin/my, app, [N/A]\nNo running processes found\n"
    assert gn.parse(listing) == [{"pid": 1234, "name": "python3", "memory_mib": 512},
                                 {"pid": 77, "name": "/usr/bin/my, app", "memory_mib": None}]


def test_others_are_named_and_this_process_is_not(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, f"echo '{os.getpid()}, python, 900'\necho '4242, trainer, 30000'\n")
    neighbours = gn.gpu_neighbours()
    assert neighbours == [{"pid": 4242, "name": "trainer", "memory_mib": 30000}]
    assert gn.describe(neighbours) == "1 other process(es) on the GPU: 4242 (trainer, 30000 MiB)"


@pytest.mark.parametrize("script,holds_context,expected", [
    ("echo '4242, trainer, 30000'\n", True, None),  # another pid namespace: cannot say
    ("echo '4242, trainer, 30000'\n", False, [{"pid": 4242, "name": "trainer", "memory_mib": 30000}]),  # run start
    ("", True, []),  # nobody on the GPU
    ("echo 'NVIDIA-SMI has failed' >&2\nexit 9\n", True, None),
])
def test_what_cannot_be_told_is_none(tmp_path, monkeypatch, script, holds_context, expected):
    stand_in(tmp_path, monkeypatch, script)
    assert gn.gpu_neighbours(holds_context) == expected


def test_no_nvidia_smi_is_none(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert gn.gpu_neighbours() is None


def test_the_report_counts_cases_timed_beside_another_gpu_process():
    run = load_run(REPO / "results" / "runs" / "ci-20261207-213640")
    assert load_warning(run) == ""
    first, *rest = run.kernel_rows
    run.kernel_rows = [first.model_copy(update={"load_flags": "gpu_shared", "contended": True}), *rest]
    vars(run).pop("kernels", None)  # the cached table, rebuilt from the rows
    said = load_warning(run)
    assert f"1 of {len(run.kernel_rows)} cases were timed while other processes ran on the GPU (flagged gpu_shared)" in said
    assert "took CPU time" not in said  # the GPU's neighbour is not CPU time taken


def test_a_cuda_row_beside_another_gpu_process_is_flagged_and_alone_it_is_not(tmp_path, monkeypatch):
    stand_in(tmp_path, monkeypatch, f"echo '{os.getpid()}, python, 900'\necho '4242, trainer, 30000'\n")
    quiet = {"load_flags": "", "contended": False, "others_cores": 0.1}
    assert gn.flag_if_shared(quiet) == {**quiet, "load_flags": "gpu_shared", "contended": True}
    assert gn.flag_if_shared({**quiet, "load_flags": "busy", "contended": True})["load_flags"] == "busy,gpu_shared"
    stand_in(tmp_path, monkeypatch, f"echo '{os.getpid()}, python, 900'\n")
    assert gn.flag_if_shared(quiet) is quiet
