"""`python -m bench run SUITE`: suite -> cases -> correctness -> timing -> results, with live progress.

Steps: plan (cases, shard, checks, data, the machine's load: all that can refuse the run, before a
folder exists), then in the run folder: train (missing models; kernel cases may time their masks),
measure (models, then kernel cases), finish (tables and report). Each finished case is appended to the
run folder at once, so Ctrl-C or a kill loses at most the case in flight, and `--resume RUN_DIR`
finishes the rest.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Column as TableColumn
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from bench.plan.cases import check_runnable, kernel_cases, model_cases, model_sections, parse_shard, section_seeds, shard_cases
from bench.core.errors import UserError
from bench.machine.gpu_neighbours import describe as describe_gpu
from bench.machine.gpu_neighbours import gpu_neighbours
from bench.machine.contention import Load, describe, free_cores, measure_load, wait_quiet
from bench.machine.fingerprint import fingerprint
from bench.machine.peaks import measure_peaks, memory_roof
from bench.measure.kernel import run_kernel_case
from bench.measure.model import TimedModel, accuracy_row, inference_test_error, test_batches, time_models
from bench.measure.train import Datasets, check_fits, train_missing, train_or_reuse
from bench.measure.phase_clock import PhaseClock
from bench.measure.profile import profile_kernel_case, profile_model
from bench.report.data import report_data
from bench.report.terminal import print_report, write_report
from bench.store.results import append_row, drop_partial_tail, load_run, read_histories, read_typed_rows, write_tables
from bench.store.run_folder import create_run_folder, measured, owned, refuse_if_written, resumable, write_json_atomic
from bench.core.schema import ModelRow
from bench.plan.suite import Suite, parse_suite, suite_text
from condcore.data import DatasetNotFound
from condcore.data.formats import DataFormatError
from condcore.timing import cache_state

DEFAULT_ROOT = Path("results")


@dataclass(frozen=True)
class RunOptions:
    """How to run: the suite (or the run to resume) and the choices `bench run` takes, typed at the CLI's
    edge (bench.cli.run) and never a Namespace past it."""

    suite: Path | None = None  # the suite's file, or only its name in messages when suite_text is given
    suite_text: str | None = None  # the suite's YAML when it is not the file's (bench kernels applies options)
    results: Path | None = None  # results root; None: results/, or a resumed run's own
    resume: Path | None = None  # the run folder to finish
    shard: str | None = None  # "i/n"; None: 0/1, or a resumed run's own
    quiet: bool = False  # no progress bar, no report
    wait_quiet: float = 0.0  # seconds to wait for other processes to leave this run's CPUs
    free_cores_only: bool = False  # no more threads than the cores left free at the start
    case: tuple[str, ...] | None = None  # --case's fnmatch patterns
    profile: bool = False  # profile each case too


def _open_run(options: RunOptions) -> tuple[Suite, str, Path | None, dict | None, tuple[int, int]]:
    """(suite, its text, the folder to resume or None for a new run, its env or None, shard)."""
    if options.resume is not None:
        if options.suite is not None:
            raise UserError("name a suite file to start a run, or --resume RUN_DIR to finish one, not both")
        text, env = resumable(options.resume)
        suite = parse_suite(text, str(options.resume / "suite.yaml"))
        shard = tuple(env["shard"]) if env is not None else _shard_of(options.resume)
        _refuse_new_choices(options, env, shard)
        return suite, text, options.resume, env, shard
    if options.suite is None:
        raise UserError("name a suite file (e.g. suites/cpu.yaml) or --resume RUN_DIR")
    text = options.suite_text or suite_text(options.suite)
    return parse_suite(text, str(options.suite)), text, None, None, parse_shard(options.shard or "0/1")


def _refuse_new_choices(options: RunOptions, env: dict | None, shard: tuple[int, int]) -> None:
    """A resumed run finishes what it was started to do, where it was started: a flag that would change
    its cases, its shard or its results root is one line, never obeyed or ignored silently."""
    own = _own_root(options.resume)
    if options.results is not None and own is not None and options.results.resolve() != own:
        raise UserError(f"--resume finishes a run in its own results root ({own}); --results {options.results} "
                        "would put its checkpoints elsewhere")
    if options.shard is not None and parse_shard(options.shard) != tuple(shard):
        raise UserError(f"--resume: this run is shard {shard[0]}/{shard[1]}; --shard {options.shard} would make it "
                        "another (start a new run for that shard)")
    started = (env or {}).get("case_filter")
    if options.case and list(options.case) != list(started or []):
        raise UserError(f"--resume: this run was started with {'--case ' + ' '.join(started) if started else 'every case'}; "
                        f"--case {' '.join(options.case)} would change its cases (start a new run for those)")


def results_root(options: RunOptions) -> Path:
    """Where checkpoints and new run folders go: --results, or for a resumed run under <root>/runs/ that
    root (not the current folder's results/), else the default."""
    if options.resume is not None and (own := _own_root(options.resume)) is not None:
        return own
    return DEFAULT_ROOT if options.results is None else options.results


def _own_root(folder: Path) -> Path | None:
    """A run folder's results root: <root> for <root>/runs/<id>; None for a folder elsewhere (a copy)."""
    folder = folder.resolve()
    return folder.parent.parent if folder.parent.name == "runs" else None


def _shard_of(folder: Path) -> tuple[int, int]:
    """A folder killed before its env.json was written: its name says the shard (see create_run_folder)."""
    parts = folder.name.split("-shard")
    if len(parts) > 1:
        with contextlib.suppress(UserError):
            return parse_shard(parts[-1].split("-")[0].replace("of", "/"))
    return 0, 1


def _measure_env(suite: Suite, kernels: list, shard: tuple[int, int]) -> dict:
    """The machine's fingerprint and, per device the cases use, its measured roofline (bench.machine.peaks)."""
    env = fingerprint(suite.threads)
    devices = sorted({c.device for c in kernels})
    peaks = {d: measure_peaks(d, [c.dtype for c in kernels if c.device == d]) for d in devices}
    env.update(suite=suite.name, shard=list(shard), peaks=peaks,
               copy_bandwidth_Bps={d: peaks[d]["copy_Bps"] for d in devices}, measured=True)
    return env


@dataclass
class Plan:
    """What a run will do, decided and checked before any folder exists: a refused run leaves none."""

    suite: Suite
    text: str  # the suite's YAML, stored with the run
    folder: Path | None  # the folder to resume, or None for a new run
    env: dict | None  # the resumed run's environment, if it was written
    shard: tuple[int, int]
    kernels: list  # this shard's cases
    models: list
    data: Datasets | None
    start: dict  # the machine's load and the threads used, at the start of this invocation
    profile: bool = False  # profile each case too (a resumed run keeps its first invocation's choice)
    case_filter: list[str] | None = None  # --case's patterns, kept for a resume


def run(options: RunOptions) -> int:
    """plan -> (in the run folder) train -> measure -> finish."""
    clock = PhaseClock()
    plan = make_plan(options, clock)
    folder = plan.folder or create_run_folder(results_root(options), plan.suite.name, plan.text, plan.shard)
    with owned(folder):
        return _run_owned(options, plan, folder, clock)


def make_plan(options: RunOptions, clock: PhaseClock) -> Plan:
    suite, text, folder, env, (index, count) = _open_run(options)
    if folder is not None:
        refuse_if_written(folder)
    source = str(options.suite or folder)
    all_kernels, all_models = kernel_cases(suite), model_cases(suite)
    patterns = list(options.case) if options.case else (env or {}).get("case_filter")
    kernels, models = shard_cases(all_kernels, all_models, index, count, patterns, source)
    if not all_kernels and not all_models:
        raise UserError(f"{source}: the suite has no case to run (no models section, and its sweeps' "
                        "exclude rules remove every kernel case)" if suite.kernels else f"{source}: the suite has no case to run")
    if not kernels and not models:
        raise UserError(f"{source}: shard {index}/{count} gets no case: the suite has "
                        f"{len(all_kernels) + len(all_models)}; use at most that many shards")
    check_runnable(kernels, source, suite.threads)
    if any(m.device == "cuda" for m in models) and not torch.cuda.is_available():
        raise UserError(f"{source}: a models section asks for device cuda, but CUDA is not available on this machine")
    for dataset, hidden, batch, device in dict.fromkeys((m.dataset, m.hidden, m.batch_size, m.device) for m in models):
        # before anything trains, not an allocation traceback
        check_fits(dataset, hidden, batch, f"{source}: models", device)
    data = _load_data(suite)
    with clock.phase("waiting_for_quiet" if options.wait_quiet > 0 else "load_check"):
        load = _machine_load(options, suite.threads)
        on_gpu = any(c.device == "cuda" for c in kernels) or any(m.device == "cuda" for m in models)
        if on_gpu and (neighbours := gpu_neighbours(holds_context=False)):
            Console(stderr=True).print(f"[bold red]warning[/bold red]: {describe_gpu(neighbours)}. CUDA timings "
                                       "will be slow and noisy; each case timed beside one is flagged "
                                       "gpu_shared.", highlight=False)
    requested = suite.threads
    if options.free_cores_only and free_cores(load) < suite.threads:
        suite = suite.model_copy(update={"threads": free_cores(load)})
        Console(stderr=True).print(f"[yellow]note[/yellow]: {suite.threads} thread(s) instead of {requested}: "
                                   "--free-cores-only")
    start = {**load.to_dict(), "threads": suite.threads, "threads_requested": requested}
    profile = bool(options.profile or (env or {}).get("profile"))
    return Plan(suite, text, folder, env, (index, count), kernels, models, data, start, profile, patterns)


def _machine_load(options: RunOptions, threads: int) -> Load:
    """The other processes' load on this run's CPUs, after waiting for quiet if asked; a warning when busy."""
    console = Console(stderr=True)
    if options.wait_quiet > 0:
        def waiting(load: Load, waited: float) -> None:
            console.print(f"waiting for a quiet machine ({waited:.0f} of {options.wait_quiet:.0f} s): "
                          f"{describe(load, threads)}", highlight=False)

        load, _ = wait_quiet(options.wait_quiet, waiting)
    else:
        load = measure_load(1.0)
    if load.flags(threads):
        console.print(f"[bold red]warning[/bold red]: {describe(load, threads)}. Timings will be slow and noisy; "
                      "each affected case is flagged. --wait-quiet SECONDS waits for a quiet machine, "
                      "--free-cores-only uses only the free cores.", highlight=False)
    return load


def _load_data(suite: Suite) -> Datasets | None:
    """The suite's datasets, each seed's split loaded on first use; each section's first one now, so a
    missing or damaged dataset refuses the run before it starts."""
    if not suite.models:
        return None
    datasets = Datasets({section.dataset: section.data_dir for section in suite.models})
    try:
        for section in suite.models:
            datasets(section.dataset, section_seeds(suite, section)[0])
    except (DatasetNotFound, DataFormatError) as exc:
        raise UserError(str(exc)) from None
    return datasets


def _run_owned(options: RunOptions, plan: Plan, folder: Path, clock: PhaseClock) -> int:
    torch.set_num_threads(plan.suite.threads)
    console = Console(stderr=True)
    notes = [note for table in ("models", "kernels", "profiles", "model_profiles")
             if (note := drop_partial_tail(folder / f"{table}.jsonl"))]
    # Rows are read (and refused if corrupt) before anything is measured, so a bad folder costs no time.
    done = Done({r.name for r in read_typed_rows(folder / "models.jsonl", "models")},
                {r.case_id for r in read_typed_rows(folder / "kernels.jsonl", "kernels")}, read_histories(folder))
    for note in notes:
        console.print(f"[yellow]note[/yellow]: {note}")
    env = plan.env
    if env is None or not measured(env):
        if env is None and options.resume is not None:
            console.print(f"[yellow]note[/yellow]: {folder} has no environment (killed before it was written); "
                          "measuring it now")
        with clock.phase("environment"):
            env = _measure_env(plan.suite, plan.kernels, plan.shard)
        env["load_at_start"] = plan.start
        env.update(profile=plan.profile, case_filter=plan.case_filter)
    else:
        env.setdefault("load_at_resumes", []).append(plan.start)
    write_json_atomic(folder / "env.json", env)
    try:
        status = _measure(options, plan, folder, env, done, clock)
    finally:
        # Each invocation (a resume adds one) says where its wall time went, interrupted or not; the
        # report, written next, is not in it.
        env.setdefault("wall_seconds", []).append(clock.seconds())
        write_json_atomic(folder / "env.json", env)
    return status if status else _finish(options, folder)


@dataclass
class Done:
    """What an earlier invocation of this run finished (nothing, for a new run)."""

    models: set[str]
    kernels: set[str]
    histories: dict


def progress_bar(console: Console, quiet: bool = False) -> Progress:
    """The run's progress line. The description (a case id can be 150 characters) takes what the bar,
    the count and the times leave, cut at its end: on an 80-column terminal the bar and the ETA stay."""
    return Progress(TextColumn("{task.description}", table_column=TableColumn(ratio=1, no_wrap=True, overflow="ellipsis")),
                    BarColumn(bar_width=16), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=console, disable=quiet, expand=True)


def _measure(options: RunOptions, plan: Plan, folder: Path, env: dict, done: Done, clock: PhaseClock) -> int:
    """Trains what is missing, then times the models and the kernel cases not done yet, with progress."""
    console = Console(stderr=True)
    suite, kernels, models = plan.suite, plan.kernels, plan.models
    checkpoints = results_root(options) / "checkpoints"
    models_done, kernels_done = len({c.name for c in models} & done.models), len(done.kernels & {k.case_id for k in kernels})
    line = f"[bold]{suite.name}[/bold]: {len(models)} models, {len(kernels)} kernel cases -> {folder}"
    if options.resume is not None:
        line += f" (resuming: {models_done} models and {kernels_done} kernel cases already done)"
    console.print(line)
    needed = {c.model for c in kernels if c.model}
    progress = progress_bar(console, options.quiet)
    try:
        with progress:
            _train(suite, models, done.models, needed, plan.data, checkpoints, progress, clock)
            task = progress.add_task("cases", total=len(models) + len(kernels))
            progress.advance(task, models_done + kernels_done)
            with clock.phase("model_timing"):
                _time_models(suite, folder, models, done.models, done.histories, plan.data, checkpoints, progress, task,
                             plan.profile)
            with clock.phase("kernels"):
                _time_kernels(suite, folder, env, kernels, done.kernels, checkpoints, progress, task, plan.profile)
    except KeyboardInterrupt:
        console.print(f"interrupted: finished cases are in {folder}; finish with "
                      f"`python -m bench run --resume {folder}`")
        return 130
    return 0


def _train(suite: Suite, models: list, done_models: set, needed: set, data: Datasets | None, checkpoints: Path,
           progress: Progress, clock: PhaseClock) -> None:
    """Trains the shard's unfinished models, and another shard's whose masks a kernel case here times."""
    shard_names = {case.name for case in models}
    to_train = [case for case in models if case.name not in done_models]
    to_train += [case for case in model_cases(suite) if case.name in needed - shard_names]
    if not suite.models or not to_train:
        return
    jobs = max(section.train_jobs for section in suite.models) or suite.threads
    training = progress.add_task(f"training ({jobs} at a time)", total=len(to_train))
    with clock.phase("training"):
        train_missing(to_train, data, checkpoints, jobs, on_done=lambda case: progress.advance(training))


def _time_models(suite: Suite, folder: Path, models: list, done_models: set, histories: dict,
                 data: Datasets | None, checkpoints: Path, progress: Progress, task, profile: bool) -> None:
    """Times the models not done yet, each dataset's together (bench.measure.model: every model and provider
    in the same rounds; past a section's first seed only their accuracy is read); each model's row, and its
    training history into histories.json; with `profile`, the profiles of each timed model after."""
    section_of = {case.name: section for section, cases in model_sections(suite) for case in cases}
    todo = [case for case in models if case.name not in done_models]
    loaded, timed = {}, {}
    for case in todo:
        split = data(case.dataset, case.seed)
        loaded[case.name] = (*train_or_reuse(case, split, checkpoints, progress=False), split)  # trained above: loads
        section = section_of[case.name]
        if section.time_every_seed or case.seed == section_seeds(suite, section)[0]:
            timed.setdefault(case.dataset, (section, []))[1].append(TimedModel(case.name, *loaded[case.name]))
    fields = {}
    for dataset, (section, together) in timed.items():  # a dataset's sections share batches and providers
        progress.update(task, description=f"timing {len(together)} {dataset} models x {len(section.providers)} "
                                          "providers together")
        fields.update(time_models(together, tuple(section.batches), suite.repeats, tuple(section.providers),
                                  suite.threads, section.device, section.inference_dtype))
    for case in todo:
        model, metrics, split = loaded[case.name]
        section = section_of[case.name]
        untimed = {**accuracy_row(model, metrics), "device": section.device, "inference_dtype": section.inference_dtype}
        if case.name not in fields and section.inference_dtype != "float32":
            # not timed (a later seed), but compared on the accuracy of the inference its section times
            untimed["inference_test_error"] = inference_test_error(model, split.test, metrics["inference_mode"],
                                                                   section.device, section.inference_dtype)
        row = ModelRow(name=case.name, seed=case.seed, **(fields.get(case.name) or untimed))
        # Model profiles run the CPU float32 model (bench.measure.profile): a section timed elsewhere has none.
        if profile and case.name in fields and row.error is None and (row.device, row.inference_dtype) == ("cpu", "float32"):
            progress.update(task, description=f"profiling model {case.name}")
            times = {(m.provider, m.batch): m.median for m in row.metrics if m.metric == "time"}
            for model_profile in profile_model(case.name, model, metrics["inference_mode"],
                                               lambda b, split=split: test_batches(split.test.x, b), times, folder):
                append_row(folder / "model_profiles.jsonl", model_profile)
        # Before the row: a row in models.jsonl marks the model done, and its history must be kept by then.
        histories[case.name] = metrics["history"]
        write_json_atomic(folder / "histories.json", histories)
        append_row(folder / "models.jsonl", row)
        progress.advance(task)


def _time_kernels(suite: Suite, folder: Path, env: dict, kernels: list, done_kernels: set, checkpoints: Path,
                  progress: Progress, task, profile: bool) -> None:
    peers = {sweep.name: tuple(sweep.peers) for sweep in suite.kernels}
    for case in kernels:
        if case.case_id in done_kernels:
            continue
        progress.update(task, description=f"kernel {case.case_id}")

        def profile_it(build, samples, case=case):
            progress.update(task, description=f"profiling {case.case_id}")
            # Before the case's row, which marks it done: a kill in between profiles it again on resume.
            append_row(folder / "profiles.jsonl", profile_kernel_case(case, build, samples, folder))

        cuda_graph = case.device == "cuda" and case.batch <= suite.cuda_graph_max_batch
        row = run_kernel_case(case, checkpoints=checkpoints, seed=suite.seed, rounds=suite.repeats,
                              **_roof(env, case, cuda_graph), cuda_graph=cuda_graph, peers=peers[case.sweep],
                              on_timed=profile_it if profile else None)
        append_row(folder / "kernels.jsonl", row)
        progress.advance(task)


def _roof(env: dict, case, cuda_graph: bool) -> dict:
    """The case's roofline: the run's measured peaks for its device and dtype, the memory roof of its
    cache state; a run resumed from before peaks were measured has only its copy bandwidth (and the dense
    GEMM at the case's shape as its roof)."""
    peaks = (env.get("peaks") or {}).get(case.device)
    if peaks is None:
        return {"bandwidth": env["copy_bandwidth_Bps"][case.device]}
    return {"bandwidth": memory_roof(peaks, cache_state(case.device, case.cache, cuda_graph)),
            "peak_flops": peaks["gemm_flops"].get(case.dtype)}


def _finish(options: RunOptions, folder: Path) -> int:
    """The run's tables and report, from its folder."""
    console = Console(stderr=True)
    result = load_run(folder)
    write_tables(result)
    if not options.quiet:
        data = report_data(result)
        print_report(data)
        console.print(f"report: {write_report(data, folder / 'report')}")
    failed = int((result.kernels["status"] != "ok").sum()) if not result.kernels.empty else 0
    console.print(f"results: {folder}" + (f" ([red]{failed} failed case(s)[/red])" if failed else ""))
    return 0
