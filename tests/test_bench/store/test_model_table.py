"""The models table a run's analyses read: accuracy is that of the inference timed."""

from __future__ import annotations

from support.paths import REPO

from bench.analysis.models_summary import inference_where, model_summary
from bench.store.results import load_run

RUN = REPO / "results" / "runs" / "cpu-20261204-205105"


def test_a_float32_cpu_run_reads_as_before_devices():
    models = load_run(RUN).models
    assert not {"device", "inference_dtype", "inference_test_error", "checkpoint_test_error"} & set(models.columns)
    assert inference_where(models) == ""


def test_a_bf16_run_is_compared_on_its_bf16_accuracy_with_the_checkpoints_beside_it():
    run = load_run(RUN)
    run.model_rows = [r.model_copy(update={"device": "cuda", "inference_dtype": "bfloat16",
                                           "inference_test_error": r.test_error + 0.01}) for r in run.model_rows]
    models = run.models
    assert list(models["test_error"]) == [r.test_error + 0.01 for r in run.model_rows]
    assert list(models["checkpoint_test_error"]) == [r.test_error for r in run.model_rows]
    assert "inference_test_error" not in models and inference_where(models) == "inference on cuda in bfloat16"
    assert all(r.timed_test_error == r.test_error + 0.01 for r in run.model_rows)
    summary = model_summary(models)
    assert (summary["test_error"] > summary["checkpoint_test_error"]).all()
