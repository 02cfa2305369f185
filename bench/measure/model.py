"""Whole-inference timing of trained models: every model under every provider (bench.core.model_providers),
each checked first, all of them interleaved in the same rounds at each batch size.

One timing group per batch size holds every timed model's every correct provider, so the speedup of any
model over any other (a CondNet over the fastest dense net of its accuracy, bench.analysis.frontier) is a ratio
of the same rounds, like a kernel case's speedup over its baseline. Each row keeps its per-round times
(`samples`) and the group's id for that. Each sample lasts about SAMPLE_S; the machine idles after each
(SETTLE_S, longer after a provider whose threads outlive its calls: `ModelProvider.settle_s`), and each
round runs in a fresh seeded order, so that no candidate slows the one after it in every round. The models are timed together, as one case: a kill during
it times them again on resume; their training is kept. A section on a GPU, or in 16 bits, times copies
of its models there (each sample then waits for the device), checked against the float64 network on the
masks their own forward chose (condcore.speed.check_inference).
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass

import torch

from bench.machine.contention import load_since, snapshot
from bench.machine.gpu_neighbours import flag_if_shared
from bench.core.model_providers import MODEL_PROVIDERS, ProviderUnavailable, is_dense
from bench.core.schema import Metric, ProviderCheck, RoundTimes
from condcore.data import Dataset, Split
from condcore.models import CondNet
from condcore.ops import frozen_weights
from condcore.problems import RELATIVE_TOLERANCE, relative_error_to
from condcore.speed import LOW_PRECISION, check_inference, dense_twin, flop_ideal
from condcore.train import evaluate
from condcore.timing import bootstrap_interval, iqr, median, ratio_samples, time_cpu_interleaved

RTOL = ATOL = 1e-4  # a provider's logits against the spec's, as condcore.speed.check_inference
SAMPLE_S = 5e-3  # each sample's calls last about this long (condcore.timing.time_cpu_interleaved)
# The machine idles this long after every sample (a provider may ask for more, ModelProvider.settle_s):
# a 64-wide net's call timed right after a 2048-wide one's ran 1.5x slower, 50 ms later as alone.
SETTLE_S = 0.02


@dataclass
class TimedModel:
    name: str
    model: CondNet
    metrics: dict  # its checkpoint's (condcore.train.save_checkpoint)
    data: Dataset  # its seed's split: the test batches come from it


def test_batches(x: torch.Tensor, batch: int, most: int = 16) -> list[torch.Tensor]:
    """Up to `most` distinct test batches of `batch` rows; a test set smaller than one batch is tiled,
    never silently shrunk."""
    if len(x) < batch:
        return [x.repeat(-(-batch // len(x)), 1)[:batch]]
    return [x[i : i + batch] for i in range(0, len(x) - batch + 1, batch)][:most]


def accuracy_row(model: CondNet, metrics: dict) -> dict:
    """A model's row fields without timings: what its checkpoint says of its accuracy and density."""
    return {
        "dataset": metrics["dataset"], "policy": metrics["policy"], "tau": metrics["tau"],
        "inference_mode": metrics["inference_mode"], "test_error": metrics["test_error"],
        "valid_error": metrics.get("valid_error"),
        "test_examples": metrics.get("test_examples"),
        "realized_density": [round(d, 4) for d in metrics["density"]], "train_seconds": metrics["train_seconds"],
        "hidden": "x".join(map(str, model.config.hidden)), "block_size": model.config.block_size,
    }


def as_timed(model: CondNet, device: str, dtype: torch.dtype) -> CondNet:
    """The model as its inference is timed: a copy on `device` in `dtype` (itself where it already is)."""
    weight = next(model.parameters())
    if weight.device.type == device and weight.dtype == dtype:
        return model
    return copy.deepcopy(model).to(device=device, dtype=dtype).eval()


def sync_for(device: str):
    """What a timing sample waits on before its clock starts and stops (condcore.timing)."""
    return torch.cuda.synchronize if device == "cuda" else None


class _Candidate:
    """One model under one provider, checked: its prepared inputs per batch size and its call."""

    def __init__(self, run, inputs: dict[int, list]) -> None:
        self.run, self.inputs = run, inputs

    def over(self, batch: int):
        run, inputs = self.run, self.inputs[batch]
        return lambda: [run(x) for x in inputs]


@torch.no_grad()
def inference_test_error(model: CondNet, test: Split, mode: str, device: str, dtype: str) -> float:
    """The test error of the model's inference as it is timed (on `device`, in `dtype`), with the draws
    of every check where the mode samples."""
    torch_dtype = getattr(torch, dtype)
    net = as_timed(model, device, torch_dtype)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return 1.0 - evaluate(net, Split(test.x.to(device=device, dtype=torch_dtype), test.y.to(device)), mode).accuracy


@torch.no_grad()
def _check_provider(timed: TimedModel, net: CondNet, provider: str, batches: dict[int, list[torch.Tensor]],
                    specs: dict[int, list[torch.Tensor]], threads: int) -> tuple[ProviderCheck, _Candidate | None]:
    """The provider built for the model as it is timed (`net`: on its device, in its dtype) and checked
    on every test batch against the spec's logits (`specs`, per batch size as `batches`): within RTOL and
    ATOL in float32, within the dtype's tolerance of the largest logit in 16 bits (as a kernel case). A
    check that fails or a provider that cannot run is a ProviderCheck saying why, and no candidate."""
    role = "ours" if provider == "ours" else "peer"
    mode = timed.metrics["inference_mode"]
    dtype = next(net.parameters()).dtype
    tolerance = RELATIVE_TOLERANCE[dtype] if dtype in LOW_PRECISION else None
    try:
        prepare, run = MODEL_PROVIDERS[provider].build(net, mode, threads)
        inputs, worst = {}, 0.0
        for batch, xs in batches.items():
            inputs[batch] = [prepare(x) for x in xs]
            for prepared, want in zip(inputs[batch], specs[batch]):
                with torch.random.fork_rng():
                    torch.manual_seed(0)
                    got = torch.as_tensor(run(prepared)).double()
                if tolerance is not None and got.shape == want.shape:
                    error = relative_error_to(got, want)
                    if not error <= tolerance:  # written so that NaN fails
                        return ProviderCheck(provider=provider, role=role, status="failed",
                                             error=f"logits differ from the reference by {error:.3g} of their largest "
                                                   f"at batch {batch} (tolerance {tolerance})"), None
                    worst = max(worst, error)
                    continue
                if got.shape != want.shape or not torch.allclose(got, want, rtol=RTOL, atol=ATOL):
                    diff = float((got - want).abs().max()) if got.shape == want.shape else float("nan")
                    return ProviderCheck(provider=provider, role=role, status="failed",
                                         error=f"logits differ from the reference by up to {diff:.3g} at batch {batch}"), None
                worst = max(worst, float(((got - want).abs() / want.abs().clamp_min(ATOL)).max()))
    except ProviderUnavailable as exc:
        return ProviderCheck(provider=provider, role=role, status="skipped", error=str(exc)), None
    except Exception as exc:  # noqa: BLE001 - a provider that crashes is a note on the row, not the run's end
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return ProviderCheck(provider=provider, role=role, status="error", error=f"{type(exc).__name__}: {first}"), None
    return ProviderCheck(provider=provider, role=role, status="ok", max_relative_error=worst), _Candidate(run, inputs)


def time_models(models: list[TimedModel], batches: tuple[int, ...], rounds: int, providers: tuple[str, ...],
                threads: int, device: str = "cpu", dtype: str = "float32") -> dict[str, dict]:
    """Each model's row fields (bench.core.schema.ModelRow less name and seed): its accuracy, each provider's
    check, and per batch size each correct provider's time, all models and providers interleaved in one
    group per batch; the speedup over its same-shape dense twin (the dense model of its hidden shape
    timed here, else one built from its weights), as before. A model whose own forward (`ours`) disagrees
    with the reference is a failed row: its accuracy and the error, no timings. Inference runs on
    `device` in `dtype` (a copy of each model, its test batches cast); on CUDA each sample waits for the
    device before its clock starts and stops. Outside float32, each row also has the test error of that
    inference (`inference_test_error`)."""
    torch_dtype = getattr(torch, dtype)
    nets = {timed.name: as_timed(timed.model, device, torch_dtype) for timed in models}
    group = uuid.uuid4().hex[:12]
    rows: dict[str, dict] = {}
    candidates: dict[tuple[str, str], _Candidate] = {}
    twins: dict[str, tuple[str, str]] = {}  # model -> the candidate its speedup over the dense twin divides
    test_xs: dict[str, dict[int, list[torch.Tensor]]] = {}  # model -> its test batches per batch size
    before = snapshot()
    with frozen_weights():
        for timed in models:
            row = rows[timed.name] = {**accuracy_row(timed.model, timed.metrics), "device": device,
                                      "inference_dtype": dtype}
            mode, net = timed.metrics["inference_mode"], nets[timed.name]
            xs = test_xs[timed.name] = {b: [x.to(device=device, dtype=torch_dtype) for x in test_batches(timed.data.test.x, b)]
                                        for b in batches}
            if dtype != "float32":
                row["inference_test_error"] = inference_test_error(net, timed.data.test, mode, device, dtype)
            specs = {}  # per batch size, the spec's logits every provider must compute
            try:
                for b, batch_xs in xs.items():
                    specs[b] = [spec.double() for spec in check_inference(net, batch_xs, mode)]
            except ValueError as exc:  # its timed forward disagrees with the spec: a failed row
                row["error"] = f"batch {b}: {exc}"
                continue
            checks = []
            for provider in providers:
                check, candidate = _check_provider(timed, net, provider, xs, specs, threads)
                checks.append(check)
                if candidate is not None:
                    candidates[(timed.name, provider)] = candidate
            row["checks"] = checks
        dense_by_shape = {rows[t.name]["hidden"]: t.name for t in models
                          if is_dense(t.model) and (t.name, "ours") in candidates}
        for timed in models:
            if (timed.name, "ours") not in candidates:
                continue
            twin = dense_by_shape.get(rows[timed.name]["hidden"])
            if twin is None:  # no dense model of its shape in this group: its own weights, dense
                twin_net = dense_twin(nets[timed.name])
                candidates[(timed.name, "twin")] = _Candidate(lambda x, net=twin_net: net(x, mode="threshold").logits,
                                                              test_xs[timed.name])
                twins[timed.name] = (timed.name, "twin")
            else:
                twins[timed.name] = (twin, "ours")
        samples: dict[int, dict[tuple[str, str], list[float]]] = {}
        calls: dict[int, dict[str, int]] = {}  # per batch size, each candidate's forwards per sample
        for b in batches:
            fns = {key: candidate.over(b) for key, candidate in candidates.items()}
            n = {key: len(candidate.inputs[b]) for key, candidate in candidates.items()}
            with torch.no_grad():
                settle = {f"{k[0]}|{k[1]}": max(SETTLE_S, MODEL_PROVIDERS[k[1]].settle_s if k[1] in MODEL_PROVIDERS else 0)
                          for k in fns}
                calls[b] = {}
                raw = time_cpu_interleaved({f"{k[0]}|{k[1]}": fn for k, fn in fns.items()}, rounds,
                                           settle_after=settle, sample_s=SAMPLE_S, shuffle_seed=b, calls=calls[b],
                                           sync=sync_for(device)) if fns else {}
            samples[b] = {key: [s / n[key] for s in raw[f"{key[0]}|{key[1]}"]] for key in fns}
            calls[b] = {key: calls[b][f"{key[0]}|{key[1]}"] * n[key] for key in fns}
    load = load_since(before).row_fields(threads)
    if device == "cuda":
        load = flag_if_shared(load)
    for timed in models:
        row = rows[timed.name]
        if "error" in row:
            continue
        metrics, kept = [], []
        for b in batches:
            for (name, provider), seconds in samples[b].items():
                if name != timed.name or provider == "twin":
                    continue
                metrics.append(Metric.of(provider, "time", median(seconds), iqr(seconds), *bootstrap_interval(seconds),
                                         batch=b))
                kept.append(RoundTimes(provider=provider, batch=b, seconds=seconds, calls=calls[b][(name, provider)]))
            if timed.name in twins:
                dense, ours = samples[b][twins[timed.name]], samples[b][(timed.name, "ours")]
                ratios = ratio_samples(dense, ours)
                kept.append(RoundTimes(provider="dense", batch=b, seconds=dense, calls=calls[b][twins[timed.name]]))
                metrics += [Metric.of("dense", "time", median(dense), iqr(dense), batch=b),
                            Metric.of("ours", "speedup", median(ratios), iqr(ratios), *bootstrap_interval(ratios),
                                      batch=b)]
        row.update(load, metrics=metrics, samples=kept, timing_group=group,
                   flop_ideal=flop_ideal(timed.model, timed.data.test.x, timed.metrics["inference_mode"]))
    return rows
