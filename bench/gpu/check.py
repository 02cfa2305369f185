"""`python -m bench gpu-check --out DIR [--dry-run]`: the whole GPU answer in one command that fits a GPU
machine's short lease.

Its steps run one after another, each a process of its own stopped at its own time limit (the limits
add up to STEPS_LIMIT_S), so that whatever finished is kept: the device and its software, the GPU tests,
suites/gpu.yaml's run and report, profiles of a few of its cases, and the Triton compile metadata. Each
step's output goes to a log under DIR; summary.json says what each step did (status, seconds, limit,
log, what it wrote) and the goals the run was measured against (bench.analysis.goals).

--dry-run runs the same steps on this machine's CPU under TRITON_INTERPRET=1, on the suite shrunk to
tiny shapes (dry_run_suite): the GPU's command, proven before any GPU minute is spent on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from bench.analysis.goals import check_goals
from bench.core.errors import UserError
from bench.measure.compile_check import GPU_SUITE
from bench.plan.suite import ModelSweep
from bench.regression.revision import PROJECT_ROOT
from bench.store.results import load_run
from bench.store.run_folder import write_json_atomic

STEPS_LIMIT_S = 540.0  # the steps' limits together: nine minutes of a fifteen-minute lease
# What a step that overran gets between SIGINT (a run writes what it finished) and SIGKILL.
GRACE_S = 10.0
# The cases profiled: the goals' anchors, a large batch and a decode case at d = 0.25.
PROFILED = ("anchors/cuda/bfloat16/triton/grouped/B8192/4096x4096/k128/d0.25/out/iid",
            "decode/cuda/bfloat16/triton/union/B16/4096x14336/k128/d0.25/both/iid")
# The GPU tests: those that need CUDA and the Triton kernels' own, compiled (the slow Triton tests compile
# for sm_90 on the CPU, or run this command's dry run: neither needs the GPU's minutes); under the
# interpreter (--dry-run) the kernels' validation alone.
TESTS = ["-m", "gpu or (triton and not slow)"]
DRY_TESTS = ["-m", "(gpu or triton) and not slow", "tests/test_condcore/ops/test_ops_validation.py"]
DEVICE_SCRIPT = """
import json, platform, sys
import torch, triton
out = {"python": platform.python_version(), "torch": torch.__version__, "triton": triton.__version__,
       "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    out.update(device=p.name, capability=list(torch.cuda.get_device_capability(0)), memory_bytes=p.total_memory,
               multiprocessors=p.multi_processor_count, l2_bytes=getattr(p, "L2_cache_size", None))
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
print(json.dumps(out))
"""


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]
    limit_s: float
    writes: tuple[str, ...] = ()  # what it leaves under DIR, for the summary


@dataclass
class StepResult:
    name: str
    argv: list[str]
    limit_s: float
    status: str  # ok, failed (its exit code), timed_out (stopped at its limit)
    returncode: int | None
    seconds: float
    log: str
    writes: list[str] = field(default_factory=list)


def dry_run_suite(suite: dict) -> dict:
    """The suite on the CPU at tiny scale: the same sweeps, kernels, dtypes, regimes, mask sides, mask
    sources and peers, on 2 x 3 blocks of 16, at batches that cut the interpreter's 16-row tile, at one
    density (the profiled cases' 0.25 where swept), one thread, two rounds."""
    shrunk = {**suite, "name": f"{suite['name']}-dry", "threads": 1, "repeats": 2, "cuda_graph_max_batch": 0}
    sweeps = []
    for sweep in suite.get("kernels", []):
        regimes = sweep.get("regime", ["auto"])
        batches = [1, 5] if regimes == ["union"] else [17]
        sweeps.append({**sweep, "device": ["cpu"], "batch": batches, "block_size": [16],
                       "shape": [{"in_features": 32, "out_features": 48}],
                       "density": [0.25] if 0.25 in sweep["density"] else sweep["density"][:1],
                       # rules about the batches and block sizes shrunk away would match nothing (refused)
                       "exclude": [e for e in sweep.get("exclude", []) if not {"batch", "block_size"} & set(e)]})
    shrunk["kernels"] = sweeps
    shrunk["models"] = [{**section, "device": "cpu", "hidden": [64] * len(section.get("hidden", [1024, 1024])),
                         "block_size": 16, "taus": [0.25], "epochs": 1, "dense_widths": [16][: len(section.get("dense_widths", []))],
                         "batches": [1, 17]}
                        for section in _model_sections(suite)]
    if not shrunk["models"]:
        del shrunk["models"]
    return shrunk


def step_cases(suite: dict) -> tuple[list[str], list[str]]:
    """`--case` globs that select a suite's kernel sweeps, and its models (by dataset): the two steps that
    run one suite in two parts."""
    default = ModelSweep.model_fields["dataset"].default
    return ([f"{sweep['name']}/*" for sweep in suite.get("kernels", [])],
            list(dict.fromkeys(f"{section.get('dataset', default)}-*" for section in _model_sections(suite))))


def _model_sections(suite: dict) -> list[dict]:
    """A suite document's models sections: one section, or a list of them (as bench.plan.suite reads it)."""
    sections = suite.get("models") or []
    return [sections] if isinstance(sections, dict) else sections


def plan_steps(out: Path, dry_run: bool, suite_file: Path = GPU_SUITE) -> list[Step]:
    python = sys.executable
    spec = yaml.safe_load(suite_file.read_text())
    if dry_run:
        suite = out / "gpu-dry.yaml"
        spec = dry_run_suite(spec)
        suite.write_text(yaml.safe_dump(spec, sort_keys=False))
        profiled = [p.replace("/cuda/", "/cpu/") for p in _shrunk_ids(PROFILED)]
    else:
        suite, profiled = suite_file, list(PROFILED)
    bench = (python, "-m", "bench")
    kernels, models = step_cases(spec)
    return [
        Step("device", (python, "-c", DEVICE_SCRIPT, str(out / "device.json")), 30.0, ("device.json",)),
        Step("tests", (python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(out / "tests.xml"),
                       *(DRY_TESTS if dry_run else [*TESTS, "tests"])), 120.0, ("tests.xml",)),
        Step("suite", (*bench, "run", str(suite), "--results", str(out / "results"),
                       *(a for case in kernels for a in ("--case", case))), 230.0, ("results",)),
        Step("models", (*bench, "run", str(suite), "--results", str(out / "models"),
                        *(a for case in models for a in ("--case", case))), 70.0, ("models",)),
        Step("profile", (*bench, "profile", str(suite), "--results", str(out / "profiles"),
                         *(a for case in profiled for a in ("--case", case))), 45.0, ("profiles",)),
        Step("compile", (*bench, "compile-check", "--suite", str(suite_file), "--json", str(out / "compile.json"),
                         *(["--regime", "union"] if dry_run else [])), 45.0, ("compile.json",)),
    ]


def _shrunk_ids(ids: tuple[str, ...]) -> list[str]:
    """The profiled cases' ids in the dry-run suite: the same sweep, dtype, kernel, masks and density."""
    out = []
    for case_id in ids:
        parts = case_id.split("/")
        parts[5] = "B17" if parts[4] == "grouped" else "B5"
        parts[6], parts[7] = "32x48", "k16"
        out.append("/".join(parts))
    return out


def run_step(step: Step, out: Path, env: dict[str, str]) -> StepResult:
    """One step in a process group of its own, its output in DIR/<name>.log; at its limit the group gets
    SIGINT, then SIGKILL after GRACE_S."""
    log = out / f"{step.name}.log"
    started = time.monotonic()
    with open(log, "wb") as sink:
        proc = subprocess.Popen(step.argv, cwd=PROJECT_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            code = proc.wait(timeout=step.limit_s)
            status = "ok" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            _stop(proc)
            code, status = proc.returncode, "timed_out"
    return StepResult(step.name, list(step.argv), step.limit_s, status, code, round(time.monotonic() - started, 1),
                      log.name, [w for w in step.writes if (out / w).exists()])


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGINT, GRACE_S), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def step_env(dry_run: bool) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "160"}
    # the checkout first on the path: the GPU machines run condbench from it, uninstalled
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    if dry_run:
        env["TRITON_INTERPRET"] = "1"
    else:
        env.pop("TRITON_INTERPRET", None)  # a GPU run compiles its kernels
    return env


def check(out: Path, dry_run: bool, on_step=None) -> dict:
    """Runs every step into `out` (which must be empty or new) and writes summary.json; returns it."""
    if not dry_run and os.environ.get("TRITON_INTERPRET") == "1":
        raise UserError("TRITON_INTERPRET=1 is set: a GPU check would time the interpreter; unset it, or --dry-run")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out}: not empty; a GPU check writes into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    steps = plan_steps(out, dry_run)
    env = step_env(dry_run)
    summary = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "dry_run": dry_run,
               "limit_s": sum(s.limit_s for s in steps), "steps": []}
    for step in steps:
        result = run_step(step, out, env)
        summary["steps"].append(asdict(result))
        if on_step is not None:
            on_step(result)
        _write(out, summary)
    summary["device"] = _read_json(out / "device.json")
    summary["runs"] = {name: [str(p.relative_to(out)) for p in sorted((out / name / "runs").glob("*"))]
                       for name in ("results", "models", "profiles") if (out / name / "runs").is_dir()}
    summary["goals"] = _goals(out)
    summary["seconds"] = round(sum(s["seconds"] for s in summary["steps"]), 1)
    _write(out, summary)
    return summary


def _goals(out: Path) -> list[dict]:
    runs = sorted((out / "results" / "runs").glob("*")) if (out / "results" / "runs").is_dir() else []
    if not runs:
        return []
    try:
        kernels = load_run(runs[-1]).kernels
    except (UserError, OSError, ValueError) as exc:
        return [{"error": f"{runs[-1].name}: {exc}"}]
    return check_goals(kernels).to_dict("records")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write(out: Path, summary: dict) -> None:
    write_json_atomic(out / "summary.json", summary)
