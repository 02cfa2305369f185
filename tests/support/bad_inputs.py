"""The corpus of user mistakes and faults the CLI must answer with one line and exit code 2.

Damaged run folders and checkpoints have a corpus of their own beside it (tests/support/damaged_artefacts.py).

One entry per line: an id, the command line (run in a fresh folder holding `files`), and a piece of the
one-line message. tests/test_bench/cli/test_bad_inputs.py runs every entry as a subprocess and checks the property
(exit 2, at most 3 lines on stderr, no traceback, no file created or changed), so a new entry is one
more line here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import yaml

from bench.core.schema import KernelProfile, KernelRow, Metric, ProviderProfile
from support.suites import tiny_suite

SWEEP = {"batch": [4], "shape": [{"in_features": 64, "out_features": 64}], "density": [0.5], "masks": None}


def suite(top: dict | None = None, **sweep) -> str:
    """The tiny suite with one case, changed by `sweep` keys; `top` sets top-level keys as they are
    (a whole models section, a name no run may have)."""
    valid = yaml.safe_load(tiny_suite(name="t", repeats=2, kernels=SWEEP | sweep))
    return yaml.safe_dump(valid | (top or {}), sort_keys=False)


ALIAS_BOMB = "name: t\nkernels:\n  - name: k\n    batch: [4]\n    shape: [{in_features: 64, out_features: 64}]\n" \
    "    block_size: [16]\n    density: [0.5]\n    include: [&a [1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], " \
    "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d], " \
    "&f [*e,*e,*e,*e,*e,*e,*e,*e,*e], &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]]\n"

RUN = "res/runs/t-1"  # a run folder to resume, report or merge
GOOD_ROW = KernelRow(case_id="k/cpu/float32/auto/auto/B4/64x64/k16/d0.5/out/iid", sweep="k", device="cpu",
                     dtype="float32", backend="auto", regime="auto", batch=4, in_features=64, out_features=64,
                     block_size=16, masks="out", mask_source="iid", requested_density=0.5, regime_used="grouped",
                     status="ok", ideal_density=0.5,
                     metrics=[Metric.of("dense", "time", 3e-6), Metric.of("ours", "time", 2e-6),
                              Metric.of("ours", "speedup", 1.5, 0.1)]).model_dump_json()
ZERO_PROFILE = KernelProfile(case_id="k/cpu/float32/auto/auto/B4/64x64/k16/d0.5/out/iid", device="cpu", providers=[
    ProviderProfile(provider="ours", total_s=0.0, plain_s=1e-3, calls=1, phases={})]).model_dump_json()


ENV = json.dumps({"suite": "t", "shard": [0, 1], "cpu_model": "x", "torch_threads": 1})
CSV_HEAD = "case_id,status,speedup,speedup_iqr\n"


def run_folder() -> dict:
    """A tiny run folder, for mistakes made with one (a damaged one: tests/support/damaged_artefacts.py)."""
    return {f"{RUN}/suite.yaml": suite(), f"{RUN}/env.json": ENV, f"{RUN}/kernels.jsonl": GOOD_ROW + "\n"}


@dataclass(frozen=True)
class Bad:
    id: str
    argv: list[str]
    message: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # symbolic links made after the files: path -> target
    without_cuda: bool = False  # only a mistake where CUDA is missing
    # more environment for the command, "{root}" standing for its folder; a file that starts with #! is
    # made executable (a stand-in sbatch on PATH)
    env: dict[str, str] = field(default_factory=dict)
    fresh: bool = False  # only in an interpreter of its own (what it changes is read at the start: PYTHONPATH)


# sbatch refusing a job as Slurm does (submitit runs the real command line; this stands in for it)
SBATCH_REFUSES = "#!/bin/sh\necho 'sbatch: error: invalid partition specified: nope' >&2\nexit 1\n"


def without(files: dict, name: str) -> dict:
    return {k: v for k, v in files.items() if k != name}


# A file and a folder outside the run folder that a link inside it points to.
OUTSIDE = {"victim": "precious", "elsewhere/keep": "x"}
UP = "../../../"  # from inside RUN to the test's root


def run_suite(text: str | bytes, *extra: str) -> tuple[list[str], dict]:
    return ["run", "s.yaml", "--results", "res", *extra], {"s.yaml": text}


def bad_suite(id: str, text: str | bytes, message: str, *extra: str, **kw) -> Bad:
    argv, files = run_suite(text, *extra)
    return Bad(id, argv, message, files, **kw)


CORPUS = [
    # include entries are validated like swept points
    bad_suite("include-negative-batch", suite(include=[{"batch": -5}]), "include[0].batch"),
    bad_suite("include-block-size-0", suite(include=[{"block_size": 0}]), "include[0].block_size"),
    bad_suite("include-block-size-96-on-256", suite(shape=[{"in_features": 256, "out_features": 256}],
                                                    include=[{"block_size": 96}]), "does not divide layer 256x256"),
    bad_suite("include-density-5", suite(include=[{"density": 5}]), "density must be in (0, 1]"),
    bad_suite("include-density-nan", suite(include=[{"density": float("nan")}]), "density must be in (0, 1]"),
    bad_suite("include-dtype-int8", suite(include=[{"dtype": "int8"}]), "include[0].dtype"),
    bad_suite("include-mask-source-bogus", suite(include=[{"mask_source": "bogus"}]), "include[0].mask_source"),
    bad_suite("include-device-tpu", suite(include=[{"device": "tpu"}]), "include[0].device"),
    bad_suite("include-shape-string", suite(include=[{"shape": "big"}]), "include[0].shape"),
    bad_suite("include-shape-zero", suite(include=[{"shape": {"in_features": 0, "out_features": 64}}]),
              "include[0].shape"),
    bad_suite("include-unknown-key", suite(include=[{"colour": "red"}]), "unknown key(s) ['colour']"),
    bad_suite("exclude-bad-value", suite(exclude=[{"batch": "four"}]), "exclude[0].batch"),
    bad_suite("include-alias-bomb", ALIAS_BOMB, "YAML aliases included"),
    # types and bounds
    bad_suite("batch-true", suite(batch=[True]), "kernels[0].batch[0]: Input should be a valid integer"),
    bad_suite("block-size-true", suite(block_size=[True]), "kernels[0].block_size[0]"),
    bad_suite("cache-lukewarm", suite(cache="lukewarm"), "kernels[0].cache"),
    bad_suite("cache-warm-on-cuda", suite(cache="warm", device=["cuda"]), "cache warm on device cuda"),
    bad_suite("density-true", suite(density=[True]), "kernels[0].density[0]"),
    bad_suite("repeats-true", suite(top={"repeats": True}), "repeats: Input should be a valid integer"),
    bad_suite("batch-quoted", suite(batch=["4"]), "kernels[0].batch[0]"),
    bad_suite("batch-float", suite(batch=[2.0]), "kernels[0].batch[0]"),
    bad_suite("batch-10e30", suite(batch=[10**30]), "kernels[0].batch[0]"),
    bad_suite("batch-huge", suite(batch=[10**9]), "less than or equal to 1048576"),
    bad_suite("repeats-10e12", suite(top={"repeats": 10**12}), "repeats: Input should be less than or equal to 10000"),
    bad_suite("threads-100000", suite(top={"threads": 100000}), "threads: Input should be less than or equal to 1024"),
    bad_suite("threads-over-cpus", suite(top={"threads": 1024}), "CPU(s) this process may use"),
    bad_suite("seed-negative", suite(top={"seed": -1}), "seed"),
    bad_suite("too-many-cases", suite(batch=list(range(1, 1001)), density=[i / 200 for i in range(1, 201)]),
              "more than 100000"),
    bad_suite("density-list-empty", suite(density=[]), "kernels[0].density"),
    bad_suite("device-list-empty", suite(device=[], include=[{"density": 0.5}]), "kernels[0].device"),
    bad_suite("misspelled-key", suite(batches=[4]), "kernels[0]: unknown key `batches` (did you mean `batch`?)"),
    bad_suite("seeds-empty", suite(top={"models": {"seeds": []}}), "models.seeds"),
    bad_suite("seeds-negative", suite(top={"models": {"seeds": [0, -1]}}), "models.seeds[1]"),
    bad_suite("seeds-repeated", suite(top={"models": {"seeds": [1, 1]}}), "seeds must differ"),
    bad_suite("seeds-true", suite(top={"models": {"seeds": [True]}}), "models.seeds[0]"),
    bad_suite("seeded-policies-without-seeds", suite(top={"models": {"seeded_policies": ["dense"]}}),
              "seeded_policies needs seeds"),
    bad_suite("seeded-policy-not-trained", suite(top={"models": {"seeds": [0, 1], "policies": ["dense"],
                                                                  "seeded_policies": ["reinforce"]}}),
              "are not among policies"),
    bad_suite("unknown-peer", suite(peers=["cusparse"]), "peers"),
    bad_suite("suite-models-batch-size-0", suite(top={"models": {"batch_size": 0}}), "models.batch_size"),
    bad_suite("suite-models-lr-negative", suite(top={"models": {"lr": -0.001}}), "models.lr"),
    bad_suite("suite-models-lr-infinite", suite(top={"models": {"lr": float("inf")}}), "models.lr"),
    bad_suite("seeded-policies-empty", suite(top={"models": {"seeds": [0, 1], "seeded_policies": []}}),
              "models.seeded_policies"),
    # names never become paths
    bad_suite("name-dotdot", suite(top={"name": "../evil"}), "name: String should match pattern"),
    bad_suite("name-slash", suite(top={"name": "a/b"}), "name: String should match pattern"),
    bad_suite("name-empty", suite(top={"name": ""}), "name: String should match pattern"),
    bad_suite("name-nul", suite().replace("name: t\n", 'name: "a\\0b"\n'), "name: String should match pattern"),
    bad_suite("name-300", suite(top={"name": "a" * 300}), "name: String should match pattern"),
    bad_suite("sweep-name-slash", suite(name="x/y"), "kernels[0].name"),
    # files and folders
    bad_suite("suite-not-utf8", b"name: t\xff\xfe\n", "not a UTF-8 text suite file"),
    bad_suite("suite-nul-byte", "name: t\x00\n", "NUL"),
    bad_suite("suite-yaml-error", "name: [unclosed", "bad YAML"),
    bad_suite("suite-a-list", "- a\n- b\n", "a suite is a YAML mapping"),
    Bad("suite-is-a-folder", ["run", "d", "--results", "res"], "is a folder", {"d/x": ""}),
    Bad("suite-missing", ["run", "nope.yaml", "--results", "res"], "no such suite file"),
    Bad("results-is-a-file", ["run", "s.yaml", "--results", "r"], "is a file, not a folder", {"s.yaml": suite(), "r": ""}),
    Bad("results-unwritable", ["run", "s.yaml", "--results", "/proc/condbench"], "cannot write there", {"s.yaml": suite()}),
    bad_suite("cuda-on-cpu", suite(device=["cuda"], cache="cold"), "CUDA is not available", without_cuda=True),
    bad_suite("models-cuda-on-cpu", suite(top={"models": {"device": "cuda", "policies": ["dense"], "hidden": [16],
                                                          "block_size": 16, "epochs": 1}}),
              "a models section asks for device cuda, but CUDA is not available", without_cuda=True),
    bad_suite("models-device-unknown", suite(top={"models": {"device": "tpu"}}), "models.device"),
    bad_suite("models-inference-dtype-int8", suite(top={"models": {"inference_dtype": "int8"}}), "models.inference_dtype"),
    bad_suite("models-one-dataset-two-devices", suite(top={"models": [{"device": "cpu"}, {"device": "cuda"}]}),
              "their device differ"),
    Bad("report-out-is-a-file", ["report", RUN, "--out", "f"], "is a file", {**run_folder(), "f": ""}),
    Bad("report-not-a-run", ["report", "res"], "not a condbench run", {"res/x": ""}),
    Bad("launcher-shards-0", ["run", "s.yaml", "--launcher", "local", "--shards", "0"], "--shards: must be between 1 and 10000, got 0",
        {"s.yaml": suite()}),
    Bad("launcher-shards-without-launcher", ["run", "s.yaml", "--shards", "2"], "go with --launcher",
        {"s.yaml": suite()}),
    Bad("launcher-sbatch-not-key-value", ["run", "s.yaml", "--launcher", "slurm", "--sbatch", "account"],
        "write KEY=VALUE", {"s.yaml": suite()}),
    Bad("launcher-slurm-without-sbatch", ["run", "s.yaml", "--launcher", "slurm", "--shards", "2"], "no sbatch on this",
        {"s.yaml": suite()}, env={"PATH": "{root}/empty"}),
    Bad("launcher-partition-refused", ["run", "s.yaml", "--launcher", "slurm", "--shards", "2", "--partition", "nope",
                                       "--results", "res"],
        "sbatch: error: invalid partition specified: nope",
        {"s.yaml": suite(), "bin/sbatch": SBATCH_REFUSES, "bin/srun": SBATCH_REFUSES}, env={"PATH": "{root}/bin:{PATH}"}),
    Bad("launcher-without-submitit", ["run", "s.yaml", "--launcher", "local", "--shards", "2"], "needs submitit",
        {"s.yaml": suite(), "nosubmitit/submitit.py": "raise ImportError('not installed here')"},
        env={"PYTHONPATH": "{root}/nosubmitit"}, fresh=True),
    Bad("launch-resume-damaged", ["run", "--resume", "l"], "l/launch.json: damaged", {"l/launch.json": "{oops"}),
    Bad("export-unknown-format", ["export", RUN, "--format", "csv", "--out", "x.json"], "invalid choice: 'csv'",
        run_folder()),
    Bad("export-not-a-run", ["export", "nowhere", "--format", "pytest-benchmark", "--out", "x.json"], "no such run folder"),
    Bad("export-out-is-a-folder", ["export", RUN, "--format", "pytest-benchmark", "--out", "d"], "is a folder, not a file",
        {**run_folder(), "d/x": ""}),
    Bad("export-out-under-a-file", ["export", RUN, "--format", "github-action-benchmark", "--out", "f/x.json"],
        "is a file, not a folder", {**run_folder(), "f": ""}),
    Bad("export-without-out", ["export", RUN, "--format", "pytest-benchmark"], "the following arguments are required: --out",
        run_folder()),
    Bad("merge-out-is-a-file", ["merge", RUN, "--out", "f"], "is a file", {**run_folder(), "f": ""}),
    Bad("gpu-check-out-not-empty", ["gpu-check", "--out", "d", "--dry-run"], "not empty; a GPU check writes into a new",
        {"d/x": ""}),
    Bad("gpu-check-interpreted", ["gpu-check", "--out", "d"], "TRITON_INTERPRET=1 is set", env={"TRITON_INTERPRET": "1"}),
    Bad("gpu-check-without-out", ["gpu-check", "--dry-run"], "the following arguments are required: --out"),
    Bad("gpu-wheels-check-nothing", ["gpu-wheels", "--out", "w", "--check-only"], "no such folder (fetch the wheels"),
    Bad("gpu-wheels-two-versions", ["gpu-wheels", "--out", "w", "--check-only"], "two wheels of submitit",
        {"w/submitit-1.5.1-py3-none-any.whl": b"", "w/submitit-1.5.2-py3-none-any.whl": b""}),
    Bad("merge-same-run-twice", ["merge", RUN, RUN, "--out", "m"], "named twice", run_folder()),
    # a damaged run folder is in tests/support/damaged_artefacts.py; these need two runs, or a profile
    Bad("merge-damaged-histories", ["merge", RUN, "res/runs/t-2", "--out", "m"], "histories.json: damaged",
        {**run_folder(), f"{RUN}/histories.json": "[]", "res/runs/t-2/suite.yaml": suite(), "res/runs/t-2/env.json": ENV}),
    Bad("report-profile-zero-time", ["report", RUN], "ours profiled 1 call(s) in 0.0 s",
        {**run_folder(), f"{RUN}/profiles.jsonl": ZERO_PROFILE + "\n"}),
    # Links inside a run folder (or --out) are refused before anything is read or written through them.
    Bad("report-csv-a-link", ["report", RUN], "kernels.csv: is a symbolic link", {**run_folder(), **OUTSIDE},
        links={f"{RUN}/kernels.csv": UP + "victim"}),
    Bad("report-folder-a-link", ["report", RUN], "report: is a symbolic link", {**run_folder(), **OUTSIDE},
        links={f"{RUN}/report": UP + "elsewhere"}),
    Bad("report-out-holds-a-link", ["report", RUN, "--out", "rep"], "index.html: is a symbolic link",
        {**run_folder(), **OUTSIDE}, links={"rep/index.html": "../victim"}),
    Bad("resume-lock-a-link", ["run", "--resume", RUN], ".lock: is a symbolic link", {**run_folder(), **OUTSIDE},
        links={f"{RUN}/.lock": UP + "victim"}),
    Bad("resume-rows-a-link", ["run", "--resume", RUN], "kernels.jsonl: is a symbolic link",
        {**without(run_folder(), f"{RUN}/kernels.jsonl"), **OUTSIDE, "rows": GOOD_ROW + "\n"},
        links={f"{RUN}/kernels.jsonl": UP + "rows"}),
    Bad("merge-out-dangling-link", ["merge", RUN, "--out", "m"], "--out m: already exists and is not an empty folder",
        {**run_folder(), **OUTSIDE}, links={"m/kernels.jsonl": "../gone"}),
    Bad("merge-shard-traces-a-link", ["merge", RUN, "--out", "m"], "traces: is a symbolic link",
        {**run_folder(), **OUTSIDE}, links={f"{RUN}/traces": UP + "elsewhere"}),
    # A resumed run finishes what it was started to do: flags that would change it are refused.
    Bad("resume-other-results", ["run", "--resume", RUN, "--results", "elsewhere"], "would put its checkpoints elsewhere",
        run_folder()),
    Bad("resume-other-shard", ["run", "--resume", RUN, "--shard", "1/2"], "--shard 1/2 would make it another",
        run_folder()),
    Bad("resume-other-cases", ["run", "--resume", RUN, "--case", "k/*"], "would change its cases", run_folder()),
    Bad("resume-missing-folder", ["run", "--resume", "nowhere"], "no such run folder"),
    Bad("resume-no-suite", ["run", "--resume", "d"], "no suite.yaml", {"d/env.json": ENV}),
    Bad("resume-and-a-suite", ["run", "s.yaml", "--resume", RUN], "not both", {**run_folder(), "s.yaml": suite()}),
    Bad("resume-a-file", ["run", "--resume", "f"], "is a file, not a run folder", {"f": ""}),
    # compare
    Bad("compare-empty-csv", ["compare", "a.csv", "b.csv"], "is empty", {"a.csv": "", "b.csv": CSV_HEAD}),
    Bad("compare-binary-csv", ["compare", "a.csv", "a.csv"], "not a results CSV", {"a.csv": b"\x89PNG\x00\xff\xfe"}),
    Bad("compare-header-only", ["compare", "a.csv", "a.csv"], "holds no kernel cases", {"a.csv": CSV_HEAD}),
    Bad("compare-no-status", ["compare", "a.csv", "a.csv"], "lacks the column(s) status",
        {"a.csv": "case_id,speedup,speedup_iqr\nc,1.0,0.1\n"}),
    Bad("compare-no-iqr", ["compare", "a.csv", "a.csv"], "lacks the column(s) speedup_iqr",
        {"a.csv": "case_id,status,speedup\nc,ok,1.0\n"}),
    Bad("compare-duplicate-ids", ["compare", "a.csv", "a.csv"], "appears more than once",
        {"a.csv": CSV_HEAD + "c,ok,1.0,0.1\nc,ok,1.1,0.1\n"}),
    Bad("compare-text-speedup", ["compare", "a.csv", "a.csv"], "not a finite number", {"a.csv": CSV_HEAD + "c,ok,fast,0.1\n"}),
    Bad("compare-missing-file", ["compare", "a.csv", "nope.csv"], "no such run folder or file", {"a.csv": CSV_HEAD}),
    Bad("compare-threshold", ["compare", "a.csv", "a.csv", "--threshold", "2"], "--threshold", {"a.csv": CSV_HEAD}),
    # models and train
    Bad("models-block-size-0", ["models", "--block-size", "0", "--out", "o"], "--block-size: must be between"),
    Bad("models-epochs-0", ["models", "--epochs", "0", "--out", "o"], "--epochs: must be between"),
    Bad("models-lr-0", ["models", "--lr", "0", "--out", "o"], "--lr: must be between"),
    Bad("models-batch-size-0", ["models", "--batch-size", "0", "--out", "o"], "--batch-size: must be between"),
    Bad("models-rounds-0", ["models", "--rounds", "0", "--out", "o"], "--rounds: must be between"),
    Bad("train-lr-nan", ["train", "--lr", "nan", "--out", "o"], "--lr: must be between"),
    Bad("train-lr-inf", ["train", "--lr", "inf", "--out", "o"], "--lr: must be between"),
    Bad("train-lambda-s-nan", ["train", "--lambda-s", "nan", "--out", "o"], "--lambda-s: must be between"),
    Bad("train-epochs-huge", ["train", "--epochs", "100000000000000000000", "--out", "o"], "--epochs: must be between"),
    Bad("train-hidden-huge", ["train", "--hidden", "1048576000", "--out", "o"], "--hidden: each must be between"),
    Bad("train-does-not-fit", ["train", "--hidden", "1048576,1048576", "--out", "o"], "GiB free"),
    Bad("models-batches-huge", ["models", "--batches", "2000000000", "--out", "o"], "--batches: each must be between"),
    bad_suite("suite-models-do-not-fit", suite(top={"models": {"hidden": [1048576, 1048576], "block_size": 1024}}),
              "GiB free"),
    bad_suite("suite-tau-per-layer-wrong-length", suite(top={"models": {"hidden": [64, 64], "block_size": 16,
                                                                        "taus": [[0.5]]}}),
              "taus: [0.5] has 1 values for 2 hidden layers"),
    bad_suite("suite-tau-per-layer-zero", suite(top={"models": {"hidden": [64, 64], "block_size": 16, "taus": [[0.5, 0]]}}),
              "tau must be in (0, 1]"),
    bad_suite("suite-lambda-s-per-layer-wrong-length", suite(top={"models": {"hidden": [64, 64], "block_size": 16,
                                                                             "lambda_s": [1.0, 2.0, 3.0]}}),
              "lambda_s: [1.0, 2.0, 3.0] has 3 values for 2 hidden layers"),
    bad_suite("suite-lambda-v-negative", suite(top={"models": {"lambda_v": -1.0}}), "models.lambda_v"),
    bad_suite("suite-policy-l2-nan", suite(top={"models": {"policy_l2": float("nan")}}), "models.policy_l2"),
    bad_suite("suite-activation-unknown", suite(top={"models": {"activation": "gelu"}}), "models.activation"),
    bad_suite("suite-momentum-1", suite(top={"models": {"momentum": 1.0}}), "models.momentum"),
    bad_suite("suite-sections-one-dataset-two-batches", suite(top={"models": [{"batches": [1]}, {"batches": [1, 50]}]}),
              "both on digits but their batches differ"),
    bad_suite("suite-sections-second-wrong", suite(top={"models": [{}, {"loss_reduction": "median"}]}),
              "models[1].loss_reduction"),
    Bad("train-loss-reduction-unknown", ["train", "--loss-reduction", "median", "--out", "o"], "invalid choice"),
    Bad("train-tau-empty-item", ["train", "--tau", "0.5,,0.1", "--out", "o"], "expected numbers separated by commas"),
    Bad("train-tau-per-layer-wrong-length", ["train", "--hidden", "64,64", "--block-size", "16", "--tau", "0.5,0.5,0.5",
                                             "--out", "o"], "layer_taus has 3 values for 2 hidden layers"),
    Bad("train-lambda-s-per-layer-wrong-length", ["train", "--hidden", "64,64", "--block-size", "16", "--lambda-s",
                                                  "1,2,3", "--out", "o"], "lambda_s has 3 values for 2 hidden layers"),
    Bad("train-policy-lr-mult-negative", ["train", "--policy-lr-mult", "1,-1", "--out", "o"], "--policy-lr-mult: each"),
    Bad("train-activation-unknown", ["train", "--activation", "gelu", "--out", "o"], "--activation: invalid choice"),
    bad_suite("suite-duplicate-key", "name: t\nrepeats: 2\nrepeats: 3\n", "the key `repeats` appears twice"),
    bad_suite("suite-nested-deep", "name: t\nx: " + "[" * 900 + "]" * 900 + "\n", "nested too deep"),
    Bad("train-out-empty", ["train", "--out", ""], "--out: an empty path"),
    Bad("run-results-empty", ["run", "s.yaml", "--results", ""], "--results: an empty path", {"s.yaml": suite()}),
    Bad("report-out-empty", ["report", RUN, "--out", ""], "--out: an empty path", run_folder()),
    Bad("download-into-a-file", ["data", "download", "mnist", "--data-dir", "f"], "f: is a file", {"f": "x"}),
    Bad("download-into-proc", ["data", "download", "mnist", "--data-dir", "/proc/condbench"], "cannot write the dataset there"),
    Bad("models-provider-unknown", ["models", "--providers", "ours,tensorrt", "--out", "o"], "unknown model provider tensorrt"),
    Bad("models-threads-0", ["models", "--threads", "0", "--out", "o"], "--threads: must be between"),
    Bad("models-jobs-negative", ["models", "--jobs", "-1", "--out", "o"], "--jobs: must be between"),
    Bad("models-threads-over-cpus", ["models", "--threads", "1000", "--out", "o"], "CPU(s) this process may use"),
    Bad("models-out-is-a-file", ["models", "--hidden", "64", "--block-size", "16", "--out", "o"], "is a file", {"o": ""}),
    Bad("train-threads-100000", ["train", "--threads", "100000", "--out", "o"], "--threads: must be between"),
    Bad("train-block-size-0", ["train", "--block-size", "0", "--out", "o"], "--block-size: must be between"),
    Bad("train-out-is-a-file", ["train", "--hidden", "64", "--block-size", "16", "--out", "o"], "is a file", {"o": ""}),
    # shards and empty suites
    bad_suite("shard-gets-nothing", suite(), "shard 7/10 gets no case", "--shard", "7/10"),
    bad_suite("wait-quiet-negative", suite(), "--wait-quiet: must be between 0", "--wait-quiet", "-1"),
    bad_suite("wait-quiet-nan", suite(), "--wait-quiet: must be between 0", "--wait-quiet", "nan"),
    bad_suite("shard-garbage", suite(), "--shard must look like i/n", "--shard", "x"),
    bad_suite("exclude-removes-all", suite(exclude=[{"batch": 4}]), "no case to run"),
    bad_suite("no-sweeps-no-models", "name: t\n", "no case to run"),
    # --case picks nothing
    bad_suite("case-matches-nothing", suite(), "matches no kernel case id", "--case", "nothing/*"),
    Bad("profile-case-matches-nothing", ["profile", "s.yaml", "--results", "res", "--case", "k/cuda/*"],
        "matches no kernel case id", {"s.yaml": suite()}),
    Bad("profile-no-suite", ["profile", "missing.yaml"], "no such suite file"),
    # the regression check and its power study
    Bad("continuous-unknown-rev", ["continuous", "s.yaml", "--base", "no-such-rev-0f0f"], "no such commit",
        {"s.yaml": suite()}),
    Bad("continuous-rev-an-option", ["continuous", "s.yaml", "--base=--all"], "is not a git revision", {"s.yaml": suite()}),
    Bad("continuous-one-round", ["continuous", "s.yaml", "--base", "HEAD", "--rounds", "1"], "--rounds: must be between",
        {"s.yaml": suite()}),
    Bad("continuous-env-no-value", ["continuous", "s.yaml", "--base", "HEAD", "--head-env", "FOO"], "expected NAME=VALUE",
        {"s.yaml": suite()}),
    Bad("continuous-env-bad-name", ["continuous", "s.yaml", "--base", "HEAD", "--head-env", "1A=0"], "expected NAME=VALUE",
        {"s.yaml": suite()}),
    Bad("continuous-no-kernels", ["continuous", "s.yaml", "--base", "HEAD"], "has no kernel sweep",
        {"s.yaml": "name: t\nmodels: {hidden: [64], block_size: 16}\n"}),
    Bad("continuous-suite-missing", ["continuous", "nope.yaml", "--base", "HEAD"], "no such suite file"),
    Bad("continuous-out-is-a-file", ["continuous", "s.yaml", "--base", "HEAD", "--out", "o"], "is a file",
        {"s.yaml": suite(), "o": ""}),
    Bad("continuous-threshold-0", ["continuous", "s.yaml", "--base", "HEAD", "--threshold", "0"], "--threshold: must be",
        {"s.yaml": suite()}),
    Bad("power-no-slowdown", ["power", "s.yaml"], "--slowdown-env", {"s.yaml": suite()}),
    Bad("power-slowdown-garbage", ["power", "s.yaml", "--slowdown-env", "=0"], "expected NAME=VALUE", {"s.yaml": suite()}),
    Bad("power-zero-comparisons", ["power", "s.yaml", "--slowdown-env", "A=0", "--comparisons", "0"],
        "--comparisons: must be between", {"s.yaml": suite()}),
    Bad("power-suite-cannot-run", ["power", "s.yaml", "--slowdown-env", "A=0", "--out", "study"], "CUDA is not available",
        {"s.yaml": suite(device=["cuda"], cache="cold")}, without_cuda=True),
    Bad("power-suite-missing", ["power", "nope.yaml", "--slowdown-env", "A=0"], "no such suite file"),
    Bad("power-out-is-a-file", ["power", "s.yaml", "--slowdown-env", "A=0", "--out", "o"], "is a file",
        {"s.yaml": suite(), "o": ""}),
]
