"""A sweep launched as shards through submitit: on Slurm as a job array, or on this machine with
submitit's local executor one shard at a time (timings must never run side by side on one machine).

Each shard's run folder is made before its job starts and the job resumes it (`bench run --resume`), so
a job that dies is resubmitted onto what it had finished. The launch folder (results/launches/<id>/)
holds launch.json (the suite, the shard folders, every job submitted) and submitit's logs; `--resume`
of it waits for the jobs still alive and resubmits only the shards not finished. When every shard is
whole they are merged as `bench merge` merges them, into runs/<suite>-<time>-merged beside them.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.core.errors import UserError, read_text, writable_folder
from bench.plan.suite import parse_suite
from bench.report.data import report_data
from bench.report.terminal import print_report, write_report
from bench.runner import RunOptions, results_root
from bench.runner import run as run_suite
from bench.store.coverage import coverage
from bench.store.results import load_run, merge_runs
from bench.store.run_folder import create_run_folder, write_json_atomic, writer_of

LAUNCH_FILE = "launch.json"
POLL_S = 1.0
Launcher = Literal["slurm", "local"]


@dataclass(frozen=True)
class LaunchOptions:
    """How to spread a run over scheduler jobs; `run` holds the suite and the run's own options."""

    run: RunOptions
    launcher: Launcher = "local"
    shards: int = 1
    partition: str | None = None
    gpus_per_shard: int = 0
    time_limit_min: int = 60
    sbatch: dict[str, str] = field(default_factory=dict)  # more sbatch options, e.g. {"account": "ml"}
    max_resubmits: int = 2  # per shard, after its first job
    resume: Path | None = None  # a launch folder to finish


def run_shard(folder: str) -> str:
    """The job: finish one shard's run folder (the scheduler runs this in a process of its own)."""
    code = run_suite(RunOptions(resume=Path(folder), quiet=True))
    if code != 0:
        raise RuntimeError(f"bench run --resume {folder} exited with {code}")
    return folder


def launch(options: LaunchOptions) -> int:
    """Submit (or, resumed, re-submit) the shards, wait for them with a progress bar, resubmit the dead
    ones, then merge the shards into one run and report it."""
    submitit = _submitit()
    if options.resume is None and options.launcher == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--launcher slurm: no sbatch on this machine's PATH (run it on a Slurm login node, or "
                        "--launcher local)")
    folder, record = _resume(options) if options.resume is not None else _start(options)
    try:
        executor = _executor(submitit, folder, record)
        return _run_jobs(submitit, executor, folder, record, options)
    except UserError:
        if options.resume is None and not any(s["jobs"] for s in record["shards"]):
            _remove_unstarted(folder, record)  # nothing ran: a refused launch leaves nothing behind
        raise


def _run_jobs(submitit, executor, folder: Path, record: dict, options: LaunchOptions) -> int:
    console = Console(stderr=True)
    shards = record["shards"]
    pending = [s for s in shards if not _finished(s)]
    alive = {s["index"]: job for s in pending if (job := _alive_job(submitit, folder, record, s)) is not None}
    columns = (TextColumn("shards"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, disable=options.run.quiet) as progress:
        bar = progress.add_task("shards", total=len(shards), completed=len(shards) - len(pending))
        waiting = [s for s in pending if s["index"] not in alive]
        if record["launcher"] == "slurm":
            alive |= _submit_array(executor, folder, record, waiting)
        elif waiting and not alive:
            alive[waiting[0]["index"]] = _submit(executor, folder, record, waiting[0])
        while alive:
            time.sleep(POLL_S)
            for index, job in list(alive.items()):
                if not job.done():
                    continue
                del alive[index]
                shard = shards[index]
                if _finished(shard):
                    progress.advance(bar)
                elif len(shard["jobs"]) > options.max_resubmits:
                    raise UserError(f"shard {index}/{len(shards)} failed {len(shard['jobs'])} time(s); its last log: "
                                    f"{job.paths.stderr} (then --resume {folder})")
                else:
                    console.print(f"shard {index}/{len(shards)}: job {job.job_id} ended without finishing "
                                  f"({_why(job)}); resubmitting", highlight=False)
                    alive[index] = _submit(executor, folder, record, shard)
            if record["launcher"] == "local" and not alive:  # one shard at a time on this machine
                if nxt := next((s for s in shards if not _finished(s) and s["index"] not in alive), None):
                    alive[nxt["index"]] = _submit(executor, folder, record, nxt)
    return _merge(folder, record, options.run.quiet)


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher needs submitit: pip install submitit (or pip install 'condbench[cluster]')") from None
    return submitit


def _start(options: LaunchOptions) -> tuple[Path, dict]:
    if options.run.suite is None:
        raise UserError("--launcher: name a suite file (or --resume a launch folder)")
    if options.run.resume is not None or options.run.shard is not None:
        raise UserError("--launcher makes its own shards: not with --shard, and --resume takes a launch folder")
    text = read_text(options.run.suite, "suite file")
    suite = parse_suite(text, str(options.run.suite))
    root = results_root(options.run)
    # what this launch makes, to take back if the scheduler refuses it before any job ran
    made = [str(f) for f in (root, root / "runs", root / "launches") if not f.exists()]
    # every shard folder is made (and so checked writable) before anything is submitted
    launches = writable_folder(writable_folder(root, "--results") / "launches", "--results")
    folder = launches / f"{suite.name}-{datetime.now():%Y%m%d-%H%M%S}-{options.shards}shards"
    folder.mkdir()
    shards = [{"index": i, "run": str(create_run_folder(root, suite.name, text, (i, options.shards)).resolve()),
               "jobs": []} for i in range(options.shards)]
    record = {"suite": suite.name, "root": str(root.resolve()), "launcher": options.launcher, "shards": shards,
              "partition": options.partition, "gpus_per_shard": options.gpus_per_shard,
              "time_limit_min": options.time_limit_min, "sbatch": options.sbatch, "merged": None, "made": made}
    _save(folder, record)
    return folder, record


def _resume(options: LaunchOptions) -> tuple[Path, dict]:
    folder = options.resume
    path = folder / LAUNCH_FILE
    if not path.is_file():
        raise UserError(f"{folder}: not a launch folder (no {LAUNCH_FILE})")
    try:
        record = json.loads(read_text(path, LAUNCH_FILE))
        if not isinstance(record, dict) or not isinstance(record.get("shards"), list):
            raise ValueError("not a launch record")
    except ValueError as exc:
        raise UserError(f"{path}: damaged ({exc})") from None
    if record.get("merged"):
        raise UserError(f"{folder}: this launch finished; its merged run is {record['merged']}")
    return folder, record


def _executor(submitit, folder: Path, record: dict):
    logs = folder / "jobs"
    if record["launcher"] == "local":
        executor = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(timeout_min=record["time_limit_min"])
        return executor
    try:
        executor = submitit.SlurmExecutor(folder=logs)
    except RuntimeError as exc:  # submitit's own check that this is a Slurm machine
        raise UserError(f"--launcher slurm: {exc}") from None
    parameters = {"time": record["time_limit_min"], "job_name": f"condbench-{record['suite']}"}
    if record["partition"]:
        parameters["partition"] = record["partition"]
    if record["gpus_per_shard"]:
        parameters["gpus_per_node"] = record["gpus_per_shard"]
    if record["sbatch"]:
        parameters["additional_parameters"] = dict(record["sbatch"])
    executor.update_parameters(**parameters)
    return executor


def _remove_unstarted(folder: Path, record: dict) -> None:
    for shard in record["shards"]:
        shutil.rmtree(shard["run"], ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    for made in sorted(record.get("made", []), key=len, reverse=True):  # innermost first
        with contextlib.suppress(OSError):
            Path(made).rmdir()  # empty unless something else wrote there meanwhile: then it stays


def _submit(executor, folder: Path, record: dict, shard: dict):
    return _submit_array(executor, folder, record, [shard])[shard["index"]]


def _submit_array(executor, folder: Path, record: dict, shards: list[dict]) -> dict:
    """The shards as one job array (one sbatch on Slurm), each job recorded in launch.json."""
    if not shards:
        return {}
    try:
        with executor.batch():
            jobs = {s["index"]: executor.submit(run_shard, s["run"]) for s in shards}
    except Exception as exc:  # sbatch refused it (a partition that does not exist, a bad option)
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        raise UserError(f"the scheduler refused the shards: {lines[-1]}") from None
    for shard in shards:
        shard["jobs"].append(str(jobs[shard["index"]].job_id))
    _save(folder, record)
    return jobs


def _alive_job(submitit, folder: Path, record: dict, shard: dict):
    """A resumed launch's last job of the shard, if it still runs (then it is waited for, not doubled)."""
    if not shard["jobs"]:
        return None
    last = shard["jobs"][-1]
    if record["launcher"] == "local":
        # submitit's local job id is the pid of the job's process
        if writer_of(Path(shard["run"])) is None:
            return None
        return _ForeignLocalJob(last, Path(shard["run"]))
    job = submitit.SlurmJob(folder=folder / "jobs", job_id=last)
    return None if job.done() else job


@dataclass
class _ForeignLocalJob:
    """A local job an earlier launcher process started (submitit cannot reattach to it): alive while
    its run folder's writer is."""

    job_id: str
    run: Path

    def done(self) -> bool:
        return writer_of(self.run) is None

    def exception(self) -> Exception | None:
        return None

    @property
    def paths(self):
        return type("Paths", (), {"stderr": f"jobs/{self.job_id}_0_log.err"})


def _finished(shard: dict) -> bool:
    run = Path(shard["run"])
    if writer_of(run) is not None:
        return False
    try:
        loaded = load_run(run)
        return coverage(loaded, (run / "suite.yaml").read_text()).complete and bool(loaded.env.get("measured"))
    except UserError:
        return False


def _why(job) -> str:
    try:
        error = job.exception()
    except Exception as exc:  # the scheduler cannot say
        return type(exc).__name__
    return str(error).strip().splitlines()[0][:200] if error else "no result"


def _save(folder: Path, record: dict) -> None:
    write_json_atomic(folder / LAUNCH_FILE, record)


def _merge(folder: Path, record: dict, quiet: bool) -> int:
    runs = [Path(s["run"]) for s in record["shards"]]
    out = Path(record["root"]) / "runs" / f"{folder.name.rsplit('-', 1)[0]}-merged"
    merged = merge_runs(runs, out)
    record["merged"] = str(out)
    _save(folder, record)
    hosts = sorted({env.get("hostname", "?") for env in merged.env.get("shard_envs", [])})
    print(f"{len(runs)} shard(s) on {len(hosts)} machine(s) merged: {len(merged.kernels)} kernel case(s), "
          f"{len(merged.models)} model(s) -> {out}")
    data = report_data(merged)
    if not quiet:
        print_report(data)
    print(f"report: {write_report(data, out / 'report')}")
    return 0
