"""The Triton kernels compile for an H100 (sm_90) and keep the properties their speed rests on.

No GPU is needed: Triton's compiler and ptxas ship in the wheel (bench.measure.compile_check, `python -m bench compile-check`).
The interpreter tests prove the numbers; these prove what the chip would run: the accumulator in
registers (no spills), loads pipelined through shared memory (cp.async, LDGSTS), and tensor-core
instructions (HGMMA, Hopper's warpgroup MMA, for the large-batch kernel; HMMA for the 16-row decode
tiles, too short for a warpgroup MMA). Everything is compiled once, in one pool of worker processes.
"""

from __future__ import annotations

import os

import pytest
from support.paths import REPO

from bench.cli.main import main
from bench.measure.compile_check import LaunchCase, check_cases, gpu_configs, plan, suite_cases
from condcore.ops.triton.common import fitting_configs

pytestmark = [pytest.mark.triton, pytest.mark.slow]
SUITES = REPO / "suites"


def grouped(dtype: str, masks: str, tiles=None) -> LaunchCase:
    return LaunchCase("grouped", 8192, 4096, 4096, 128, dtype, masks, tiles=tiles)


def decode(batch: int, tiles=None) -> LaunchCase:
    return LaunchCase("union", batch, 4096, 14336, 128, "bfloat16", "both", tiles=tiles)


ONE_CONFIG = [grouped(d, m, (128, 64)) for d in ("bfloat16", "float16") for m in ("out", "both")]
ONE_CONFIG += [decode(1, (32, 128)), decode(16, (32, 128)), grouped("float32", "out", (32, 64))]
ALL_CONFIGS = [grouped("bfloat16", "both"), decode(16), grouped("float32", "both")]


@pytest.fixture(scope="module")
def compiled() -> dict[LaunchCase, list]:
    rows = check_cases(ONE_CONFIG + ALL_CONFIGS, arch=90)
    by_case: dict[LaunchCase, list] = {}
    for row in rows:
        by_case.setdefault(row.case, []).append(row)
    return by_case


def test_plan_is_for_the_gpu_even_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    launch = plan(grouped("bfloat16", "both"))
    assert launch.constexprs["UPCAST"] is False  # the interpreter-only bf16 widening is off
    assert launch.constexprs["BLOCK_M"] == 128  # the GPU's row tile for ~4096 rows per block, not 16
    assert os.environ["TRITON_INTERPRET"] == "1"  # restored


MMA_CASES = [(case, "HGMMA") for case in ONE_CONFIG[:4]] + [(case, "HMMA") for case in ONE_CONFIG[4:6]]


@pytest.mark.parametrize(("case", "mma"), MMA_CASES, ids=lambda v: f"{v.regime}-B{v.batch}-{v.dtype}-{v.masks}"
                         if isinstance(v, LaunchCase) else v)
def test_kernels_use_tensor_cores_with_pipelined_loads_and_no_spills(compiled, case, mma):
    """The large-batch kernel on warpgroup MMA (HGMMA); the decode kernel's 16-row tiles on HMMA."""
    (row,) = compiled[case]
    assert row.ok, row.error
    assert row.opcodes[mma] > 0, row.opcodes
    assert row.opcodes["LDGSTS"] > 0, f"loads not pipelined: {row.opcodes}"
    assert not row.spills, (row.stack_bytes, row.opcodes)


def test_fp32_follows_torch_and_stays_off_tf32_by_default(compiled):
    """torch.matmul computes fp32 in full precision unless allow_tf32 is set, and so does the kernel:
    no tensor-core instruction, still no spills."""
    (row,) = compiled[ONE_CONFIG[6]]
    assert row.ok, row.error
    assert row.opcodes["HGMMA"] == 0 and row.opcodes["HMMA"] == 0, row.opcodes
    assert not row.spills


@pytest.mark.parametrize("case", ALL_CONFIGS, ids=["grouped", "decode", "fp32-grouped"])
def test_every_kept_gpu_config_compiles_within_the_h100_shared_memory_without_spills(compiled, case):
    rows = compiled[case]
    assert rows
    for row in rows:
        assert row.ok, f"{row.config}: {row.error}"
        assert row.shared_bytes <= 232448, row.config
        assert not row.spills, f"{row.config} spills: {row.stack_bytes} B of stack"


def test_unknown_tiles_are_a_failed_row_not_an_error(compiled):
    (row,) = check_cases([decode(16, (48, 48))], workers=1)
    assert not row.ok and "no kept GPU config" in row.error


# The command line (`compile-check --suite ... --regime union --json`) runs as a step of `gpu-check`'s dry run
# (tests/test_bench/gpu/test_gpu_check.py), which checks its table and JSON.


def test_launches_come_from_a_suites_cuda_cases():
    launches = suite_cases(SUITES / "gpu.yaml")
    assert len(launches) == len(set(launches))
    # large batch: bf16 at 2048 and 8192, fp16 at 8192 only (the suite excludes the rest); k 64 and 128
    grouped = {(c.batch, c.dtype, c.block_size, c.masks) for c in launches if c.regime == "grouped"}
    assert grouped == {(b, d, k, m) for b in (2048, 8192) for d in ("bfloat16", "float16") for k in (64, 128)
                       for m in ("out", "both") if (d, b) != ("float16", 2048)}
    assert {(c.batch, c.in_features, c.out_features) for c in launches if c.regime == "union"} == {
        (1, 4096, 14336), (16, 4096, 14336)}
    assert suite_cases(SUITES / "cpu.yaml") == []


def test_a_gpu_case_profile_names_the_chosen_configs_build(monkeypatch):
    """What `bench profile` attaches to a CUDA case: the build of the config its autotuner chose."""
    from bench.measure.profile import triton_builds
    from bench.plan.cases import KernelCase
    from condcore.ops.triton import grouped as triton_grouped

    case = KernelCase("s", "cuda", "bfloat16", "triton", "grouped", 256, 2048, 2048, 128, 0.25, "out", "iid")
    monkeypatch.delattr(triton_grouped._grouped_kernel, "best_config", raising=False)
    assert "has not chosen" in triton_builds(case, arch=90)[0]["error"]
    launch = LaunchCase("grouped", 256, 2048, 2048, 128, "bfloat16", "out")
    chosen = fitting_configs(gpu_configs(launch), {}, **plan(launch).constexprs)[-1]  # one the GPU would keep
    monkeypatch.setattr(triton_grouped._grouped_kernel, "best_config", chosen, raising=False)
    (build,) = triton_builds(case, arch=90)
    assert build["ok"], build
    assert build["registers"] > 0 and build["shared_bytes"] > 0 and build["spills"] is False
    assert f"BLOCK_N={chosen.kwargs['BLOCK_N']}" in build["config"] and f"BLOCK_K={chosen.kwargs['BLOCK_K']}" in build["config"]


@pytest.mark.parametrize("argv,message", [
    (["--workers", "-1"], "--workers: must be between"),
    (["--json", "no/such/folder/x.json"], "no folder no/such/folder to write it in"),
])
def test_bad_options_are_one_line_before_anything_compiles(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compile-check", *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
