"""The results schema: what one row of a run holds, typed and versioned.

A kernel row is one case: what the suite asked for, what the masks realized, whether each provider
computed it right, and its measurements in long format (one `Metric` per provider and metric). A model
row is one trained model: its accuracy, realized densities and its end-to-end timings, long format too,
one per batch. Every row carries `schema_version`; rows written before it existed are version 1 and
are upgraded on reading; a version this code does not know is refused in one line.

The wide per-case columns that tables, reports and the regression check read (`speedup`,
`dense_median_s`, ...) are derived from the metrics here, by `SUMMARY`, and nowhere else.
"""

from __future__ import annotations

import json
import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

SCHEMA_VERSION = 4
# Version 1: flat dicts, no schema_version; a kernel case's `density` (requested, or a trained case's
# tau), ours and the baseline as `sparse_*` / `dense_*` columns, peers in a `providers` list; a model's
# `density` a JSON text of per-layer densities and its timings as `speedup_b{batch}` columns.
# Version 2: as 3 less a model row's provider checks, per-round times and timing group (version 3 adds
# only fields with defaults, so a version-2 row reads as it is; so do fields added to 3 since, such as
# the kernel that ran).
# Version 3: as 4 less a kernel row's per-round times (`samples`) and each sample's call count (`calls`):
# such a row's statistics past its median, IQR and interval cannot be recomputed.
READABLE_VERSIONS = (1, 2, 3, 4)


class SchemaError(ValueError):
    """A row this code cannot read: the message is one line naming what is wrong."""


class Metric(BaseModel):
    """One measured quantity of one provider, long format. `median` and `iqr` are over the per-round
    samples; `low`, `high` its 95% interval where one was computed (None otherwise)."""

    model_config = ConfigDict(extra="forbid")
    provider: str
    metric: str
    unit: str
    median: float
    iqr: float | None = None
    low: float | None = None
    high: float | None = None
    batch: int | None = None  # a model's timings are per batch size; a kernel case has one batch

    @classmethod
    def of(cls, provider: str, metric: str, median: float, iqr=None, low=None, high=None,
           batch: int | None = None) -> Metric:
        """A metric in its unit (UNITS); a spread or bound that is missing or not finite is None."""
        return cls(provider=provider, metric=metric, unit=UNITS[metric], median=median, iqr=_finite(iqr),
                   low=_finite(low), high=_finite(high), batch=batch)


class ProviderCheck(BaseModel):
    """A provider's correctness check (float64) before timing; a peer that could not run says why."""

    model_config = ConfigDict(extra="forbid")
    provider: str
    role: Literal["baseline", "ours", "peer"]
    status: str  # ok, skipped, failed, error
    error: str = ""
    max_relative_error: float | None = None
    # the kernel paths its checked call took (condcore.ops.kernel_log), "" where it runs none of ours
    kernel: str = ""


class LoadFields(BaseModel):
    """What the machine's other processes took while a row was measured (bench.machine.contention); `load_flags`
    also holds a kernel row's own measurement flags (above_roofline)."""

    others_cores: float | None = None
    steal_cores: float | None = None
    load_flags: str = ""
    contended: bool | None = None


class RoundTimes(BaseModel):
    """One provider's seconds per batch in each interleaved round at one batch size: what a speedup of one
    model over another timed in the same group (`ModelRow.timing_group`) is the per-round ratio of."""

    model_config = ConfigDict(extra="forbid")
    provider: str
    batch: int
    seconds: list[float]
    calls: int | None = None  # the calls each round's seconds average (None: not recorded, before version 4)


class KernelRow(LoadFields):
    # The case's fields repeat bench.plan.cases.KernelCase's on purpose: what is stored is versioned here and
    # must not change with the class the runner builds cases from.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    schema_version: Literal[4] = SCHEMA_VERSION
    case_id: str
    sweep: str
    device: str
    dtype: str
    backend: str
    regime: str
    batch: int
    in_features: int
    out_features: int
    block_size: int
    masks: str
    mask_source: str
    model: str = ""
    requested_density: float | None = None  # what the suite asked (None for trained masks)
    tau: float | None = None  # a trained-mask case: its model's sparsity target
    regime_used: str
    # the baseline of record: the fastest dense provider timed correct in the case (bench.core.providers
    # .DENSE_CANDIDATES), which every speedup divides; "" in rows from before it was chosen, whose
    # speedups divide plain "dense" (baseline_of_record says which a row's did)
    baseline: str = ""
    # the caches at every timed call: "cold" (flushed before it) or "warm" (what the calls before left);
    # rows from before it was recorded were timed warm
    cache: str = "warm"
    # the kernel paths ours took (condcore.ops.kernel_log.KERNEL_NAMES): what the row measured, which
    # the backend's name alone does not say ("" in rows from before it was recorded)
    kernel: str = ""
    status: str
    error: str = ""
    cuda_graph: bool = False
    # realized by the masks: the share of (input, output) block pairs active per example, the share
    # of weight tiles any example needs, and the one that bounds the speedup of this regime and the
    # kernel that ran (bench.measure.metrics.ideal_density)
    work_density: float | None = None
    tile_density: float | None = None
    ideal_density: float | None = None
    max_relative_error: float | None = None
    rounds: int | None = None
    checks: list[ProviderCheck] = []
    metrics: list[Metric] = []
    # the providers timed faster than the roofline allows (flag above_roofline among load_flags), "" if none
    above_roofline: str = ""
    ours_rank: int | None = None  # 1 + the timed providers faster than ours
    providers_timed: int | None = None
    # per timed provider, its seconds per call in each interleaved round (CPU; do_bench on CUDA keeps no
    # rounds, and rows before version 4 none): what exports recompute every statistic from
    samples: list[RoundTimes] = []

    def metric(self, provider: str, name: str) -> Metric | None:
        return next((m for m in self.metrics if m.provider == provider and m.metric == name), None)

    @property
    def baseline_of_record(self) -> str:
        """The provider the row's speedups divide."""
        return self.baseline or "dense"


class ModelRow(LoadFields):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[4] = SCHEMA_VERSION
    name: str
    seed: int
    dataset: str
    policy: str
    tau: float  # the sparsity target it was trained for
    inference_mode: str
    test_error: float
    valid_error: float | None = None
    test_examples: int | None = None
    realized_density: list[float]  # per layer, on the test set
    train_seconds: float
    hidden: str
    block_size: int
    # per batch: each correct provider's time; the dense twin's (`dense`: the dense model of the same
    # hidden shape, condbench's forward) and ours' speedup over it
    metrics: list[Metric] = []
    checks: list[ProviderCheck] = []  # each model provider's check before timing (bench.core.model_providers)
    samples: list[RoundTimes] = []  # per provider and batch, the per-round times behind its metrics
    # the models timed in the same interleaved rounds share it (bench.measure.model); None: before groups
    timing_group: str | None = None
    # dense FLOPs per example over the model's as its test-set masks require them, policies included
    # (condcore.speed.flop_ideal); None for rows before it, and for models not timed
    flop_ideal: float | None = None
    # why the model was not timed: its timed forward disagreed with the reference kernel's (None: it agreed)
    error: str | None = None
    # where its inference ran and in which dtype (bench.plan.suite.ModelSweep); test_error is its float32
    # checkpoint's, inference_test_error the test error of the inference timed, where its dtype is not float32
    device: str = "cpu"
    inference_dtype: str = "float32"
    inference_test_error: float | None = None

    @property
    def timed_test_error(self) -> float:
        """The test error of the inference that was timed: what every comparison of accuracy against speed reads."""
        return self.test_error if self.inference_test_error is None else self.inference_test_error


class ProviderProfile(BaseModel):
    """Where one provider's call goes (bench.measure.profiling), measured apart from its timing.

    `phases`: leaf phase path -> seconds per call, adding up to `total_s`, the instrumented call;
    `plain_s` the call uninstrumented, timed alternately with it; `timed_s` the case's timed median. On CUDA the phases are host time and
    `gpu_kernels` each GPU kernel's device seconds per call. `extra_memory_bytes`: the peak memory it
    needs beyond the inputs (its output, scratch, packed weights). `counters`: perf's, per call."""

    model_config = ConfigDict(extra="forbid")
    provider: str
    total_s: float
    plain_s: float
    timed_s: float | None = None
    calls: int
    phases: dict[str, float]
    extra_memory_bytes: int | None = None
    counters: dict[str, float] = {}
    counters_note: str = ""
    gpu_kernels: dict[str, float] = {}
    trace: str = ""  # the Chrome trace, relative to the run folder


class KernelProfile(BaseModel):
    """A profiled kernel case: ours and the dense baseline (and on CUDA the Triton build that ran)."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[2, 3, 4] = SCHEMA_VERSION  # unchanged in versions 3 and 4
    case_id: str
    device: str
    providers: list[ProviderProfile] = []
    triton: list[dict] = []  # per Triton kernel launched: its config, registers, spills, shared memory
    error: str = ""


class ModelProfile(BaseModel):
    """A trained model's forward at one batch size beside its dense twin's, phases per layer
    ("layer0/gate", "layer1/linear/threads/gemm", "output", ...)."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[2, 3, 4] = SCHEMA_VERSION  # unchanged in versions 3 and 4
    name: str
    batch: int
    providers: list[ProviderProfile] = []  # "dense" (the twin) and "ours" (the CondNet)
    error: str = ""


# The wide columns of the kernels table: column -> (provider, metric, statistic); BASELINE stands for
# the row's baseline of record.
BASELINE = "<baseline>"
SUMMARY = {
    "baseline_median_s": (BASELINE, "time", "median"), "baseline_iqr_s": (BASELINE, "time", "iqr"),
    "dense_median_s": ("dense", "time", "median"), "dense_iqr_s": ("dense", "time", "iqr"),
    "sparse_median_s": ("ours", "time", "median"), "sparse_iqr_s": ("ours", "time", "iqr"),
    "speedup": ("ours", "speedup", "median"), "speedup_iqr": ("ours", "speedup", "iqr"),
    "speedup_ci_low": ("ours", "speedup", "low"), "speedup_ci_high": ("ours", "speedup", "high"),
    "fraction_of_ideal": ("ours", "fraction_of_ideal", "median"),
    "fraction_of_roofline": ("ours", "fraction_of_roofline", "median"),
    "sparse_tflops": ("ours", "throughput", "median"), "sparse_gbps": ("ours", "bandwidth", "median"),
    "plain_speedup": ("ours", "plain_speedup", "median"),
    "plain_speedup_ci_low": ("ours", "plain_speedup", "low"), "plain_speedup_ci_high": ("ours", "plain_speedup", "high"),
    "dense_tflops": (BASELINE, "gemm_rate", "median"),
}
# A model's per-batch columns (the model_speeds table): column -> (provider, metric, statistic).
MODEL_SPEED = {
    "dense_median_s": ("dense", "time", "median"), "sparse_median_s": ("ours", "time", "median"),
    "speedup": ("ours", "speedup", "median"), "speedup_ci_low": ("ours", "speedup", "low"),
    "speedup_ci_high": ("ours", "speedup", "high"),
}
UNITS = {"time": "s", "speedup": "x", "plain_speedup": "x", "throughput": "TFLOP/s", "bandwidth": "GB/s", "gemm_rate": "TFLOP/s",
         "fraction_of_ideal": "1", "fraction_of_roofline": "1"}


def kernel_summary(row: KernelRow) -> dict:
    """The row as one flat record: its fields less the nested lists, plus the SUMMARY columns."""
    flat = row.model_dump(exclude={"checks", "metrics", "samples"})
    for column, (provider, name, stat) in SUMMARY.items():
        m = row.metric(row.baseline_of_record if provider == BASELINE else provider, name)
        if m is None and name == "plain_speedup" and row.baseline_of_record == "dense":  # rows from before it
            m = row.metric("ours", "speedup")
        flat[column] = getattr(m, stat) if m is not None else None
    return flat


def provider_records(row: KernelRow) -> list[dict]:
    """One record per provider of the case: its check, and its time and speedup where it was timed."""
    records = []
    for check in row.checks:
        record = {"case_id": row.case_id, "sweep": row.sweep, **check.model_dump()}
        if (t := row.metric(check.provider, "time")) is not None:
            record.update(median_s=t.median, iqr_s=t.iqr)
        if (s := row.metric(check.provider, "speedup")) is not None:
            record.update(speedup=s.median, speedup_ci_low=s.low, speedup_ci_high=s.high)
        records.append(record)
    return records


def model_speed_records(row: ModelRow) -> list[dict]:
    """One record per batch size the model was timed at."""
    batches = sorted({m.batch for m in row.metrics if m.batch is not None})
    records = []
    for batch in batches:
        record = {"name": row.name, "seed": row.seed, "batch": batch}
        for column, (provider, name, stat) in MODEL_SPEED.items():
            m = next((m for m in row.metrics if (m.provider, m.metric, m.batch) == (provider, name, batch)), None)
            record[column] = getattr(m, stat) if m is not None else None
        records.append(record)
    return records


def model_time_records(row: ModelRow) -> list[dict]:
    """One record per model provider and batch size: its check, and where it was timed its time (median,
    IQR, 95% interval), per-round seconds and timing group. Rows from before providers name ours (and
    its time) alone."""
    checks = row.checks or ([ProviderCheck(provider="ours", role="ours", status="ok")] if row.error is None else [])
    batches = sorted({m.batch for m in row.metrics if m.batch is not None})
    records = []
    for check in checks:
        for batch in batches or [None]:
            record = {"name": row.name, "seed": row.seed, "batch": batch, "provider": check.provider,
                      "status": check.status, "error": check.error, "timing_group": row.timing_group}
            t = next((m for m in row.metrics
                      if (m.provider, m.metric, m.batch) == (check.provider, "time", batch)), None)
            if t is not None:
                samples = next((s.seconds for s in row.samples if (s.provider, s.batch) == (check.provider, batch)), None)
                record.update(median_s=t.median, iqr_s=t.iqr, low_s=t.low, high_s=t.high, samples=samples)
            if batch is not None or t is not None:
                records.append(record)
    return records


# ---- reading: version check and the upgrade from version 1 ---------------------------------------------

def parse_kernel_row(raw: dict) -> KernelRow:
    return _parse(raw, KernelRow, _kernel_from_v1)


def parse_model_row(raw: dict) -> ModelRow:
    return _parse(raw, ModelRow, _model_from_v1)


def _parse(raw: dict, schema: type[BaseModel], upgrade) -> BaseModel:
    version = raw.get("schema_version", 1)
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise SchemaError(f"written by results schema version {version!r}; this condbench reads versions "
                          f"{', '.join(map(str, READABLE_VERSIONS))} (a newer condbench wrote it?)")
    try:
        raw = upgrade(raw) if version == 1 else {**raw, "schema_version": SCHEMA_VERSION}
        row = schema.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "row"
        raise SchemaError(f"not a version-{version} {schema.__name__} ({where}: {first['msg']})") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise SchemaError(f"not a version-1 {schema.__name__} (it lacks or garbles {exc})") from None
    if problem := implausible(row):
        raise SchemaError(f"a {schema.__name__} that no run writes ({problem})")
    return row


def implausible(row: BaseModel) -> str:
    """What makes a well-typed row one no run could have written (a batch of 0, a density of 1.5, a test
    error of 2.0, an ok case without its speedup or with a NaN or negative time), or "": a report must
    not print nonsense as data, nor crash on it."""
    def bad_metrics(metrics: list[Metric], samples: list[RoundTimes]) -> str:
        for m in metrics:
            if not math.isfinite(m.median) or m.median < 0 or (m.metric == "speedup" and m.median == 0):
                return f"the {m.metric} of {m.provider} is {m.median}"
        return next((f"the round times of {s.provider} at batch {s.batch}" for s in samples
                     if any(not math.isfinite(v) or v < 0 for v in s.seconds) or (s.calls is not None and s.calls < 1)), "")

    if isinstance(row, KernelRow):
        for name in ("batch", "in_features", "out_features", "block_size"):
            if getattr(row, name) < 1:
                return f"{name} {getattr(row, name)}"
        for name in ("work_density", "tile_density", "ideal_density", "requested_density"):
            value = getattr(row, name)
            if value is not None and not 0 <= value <= 1:  # 0: a trained model's masks may turn every block off
                return f"{name} {value}"
        if row.status == "ok":
            have = {(m.provider, m.metric) for m in row.metrics}
            for need in (("ours", "speedup"), ("dense", "time"), ("ours", "time")):
                if need not in have:
                    return f"an ok case without the {need[1]} of {need[0]}"
            if row.ideal_density is None:
                return "an ok case without its work density"
        return bad_metrics(row.metrics, row.samples)
    if isinstance(row, ModelRow):
        if not 0 <= row.test_error <= 1 or (row.valid_error is not None and not 0 <= row.valid_error <= 1):
            return f"test error {row.test_error}, validation error {row.valid_error}"
        if not 0 < row.tau <= 1 or row.block_size < 1 or row.seed < 0:
            return f"tau {row.tau}, block size {row.block_size}, seed {row.seed}"
        if any(not 0 <= d <= 1 for d in row.realized_density):
            return f"realized density {row.realized_density}"
        return bad_metrics(row.metrics, row.samples)
    if isinstance(row, (KernelProfile, ModelProfile)):
        for p in row.providers:
            times = (p.total_s, p.plain_s, *p.phases.values())
            if p.total_s <= 0 or p.plain_s <= 0 or p.calls < 1 or not all(map(math.isfinite, times)):
                return f"{p.provider} profiled {p.calls} call(s) in {p.total_s} s (uninstrumented {p.plain_s} s)"
    return ""


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) else None


def _kernel_from_v1(raw: dict) -> dict:
    row = {k: v for k, v in raw.items() if k in KernelRow.model_fields}
    density = raw.get("density")
    trained = raw.get("mask_source") == "trained"
    row["requested_density"], row["tau"] = (None, density) if trained else (density, None)
    row["schema_version"] = SCHEMA_VERSION
    entries = raw.get("providers")
    if not isinstance(entries, list):  # runs before the peers: ours and the baseline, in the wide columns
        entries = [{"provider": "dense", "role": "baseline", "status": "ok", "median_s": raw.get("dense_median_s"),
                    "iqr_s": raw.get("dense_iqr_s"), "speedup": 1.0},
                   {"provider": "ours", "role": "ours", "status": "ok", "median_s": raw.get("sparse_median_s"),
                    "iqr_s": raw.get("sparse_iqr_s"), "speedup": raw.get("speedup"),
                    "speedup_ci_low": raw.get("speedup_ci_low"), "speedup_ci_high": raw.get("speedup_ci_high"),
                    "max_relative_error": raw.get("max_relative_error")}]
    ok = raw.get("status") == "ok"
    row["checks"] = [{k: e.get(k) for k in ("provider", "role", "status", "error", "max_relative_error") if k in e}
                     for e in entries] if ok else []
    metrics = []
    for e in entries if ok else []:
        if e.get("status") != "ok" or _finite(e.get("median_s")) is None:
            continue
        metrics.append(Metric.of(e["provider"], "time", e["median_s"], e.get("iqr_s")))
        if e["provider"] == "ours":
            metrics.append(Metric.of("ours", "speedup", raw["speedup"], raw.get("speedup_iqr"),
                                   raw.get("speedup_ci_low"), raw.get("speedup_ci_high")))
        elif _finite(e.get("speedup")) is not None:
            metrics.append(Metric.of(e["provider"], "speedup", e["speedup"], None, e.get("speedup_ci_low"),
                                   e.get("speedup_ci_high")))
    if ok:
        for column in ("fraction_of_ideal", "fraction_of_roofline", "sparse_tflops", "sparse_gbps", "dense_tflops"):
            provider, name, _ = SUMMARY[column]
            if _finite(raw.get(column)) is not None:  # version 1's baseline was plain dense
                metrics.append(Metric.of("dense" if provider == BASELINE else provider, name, raw[column]))
    row["metrics"] = metrics
    return row


def _model_from_v1(raw: dict) -> dict:
    row = {k: v for k, v in raw.items() if k in ModelRow.model_fields}
    density = raw["density"]
    row["realized_density"] = json.loads(density) if isinstance(density, str) else density
    row["schema_version"] = SCHEMA_VERSION
    if "seed" not in raw:  # rows before seeds: one seed, the suite's, which the checkpoint name ends with
        row["seed"] = int(raw["name"].rsplit("-s", 1)[1])
    metrics = []
    # Version 1 named its per-batch columns by batch: the one place they are parsed back.
    for column in raw:
        if not (column.startswith("speedup_b") and column[len("speedup_b"):].isdigit()):
            continue
        b = int(column[len("speedup_b"):])
        if _finite(raw.get(f"dense_ms_b{b}")) is not None:
            metrics.append(Metric.of("dense", "time", raw[f"dense_ms_b{b}"] / 1e3, batch=b))
            metrics.append(Metric.of("ours", "time", raw[f"sparse_ms_b{b}"] / 1e3, batch=b))
        metrics.append(Metric.of("ours", "speedup", raw[column], None, raw.get(f"ci_low_b{b}"),
                               raw.get(f"ci_high_b{b}"), batch=b))
    row["metrics"] = metrics
    return row


