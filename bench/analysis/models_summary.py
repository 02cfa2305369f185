"""The trained models in summary: one row per policy, tau and hidden shape over its seeds (test error
with its interval, its change against the dense twin: the dense net of the CondNets' shape), and their
speedups per batch over the seeds timed."""

from __future__ import annotations

import math

import pandas as pd

from bench.analysis.frontier import reference_hidden


def model_summary(models: pd.DataFrame) -> pd.DataFrame:
    """One row per policy x tau x hidden shape over its seeds: mean test error with its 95% interval
    (`_error_interval`); its change against the dense twin trained on the same seeds' splits
    (`error_change`, paired per seed, with a t-interval from two shared seeds on; the twin is the dense
    net of the CondNets' shape, `bench.analysis.frontier.reference_hidden`); per-layer densities averaged, the
    median speedup per batch with the envelope of the seeds' intervals (a conservative bound, not a new
    interval; `speed_summary`)."""
    if models.empty:
        return models
    models = _with_hidden(models)
    dense_error, ref = {}, reference_hidden(models)
    if "seed" in models:
        dense = models[(models["policy"] == "dense") & (models["hidden"] == ref)]
        dense_error = dict(zip(dense["seed"], dense["test_error"].astype(float)))
    rows = []
    for (policy, tau, hidden), g in models.groupby(["policy", "tau", "hidden"], sort=False):
        errors = g["test_error"].astype(float)
        n = len(g)
        row = {"policy": policy, "tau": tau, "hidden": hidden, "inference_mode": g["inference_mode"].iloc[0],
               "seeds": n, "test_error": errors.mean()}
        interval = _error_interval(errors, g["test_examples"] if "test_examples" in g else None)
        if interval is not None:
            row["test_error_low"], row["test_error_high"] = interval
        # Paired per seed: a seed's split moves dense and sparse errors alike, so the difference is
        # what the policy costs, without the splits' spread.
        changes = [e - dense_error[s] for s, e in zip(g.get("seed", []), errors) if s in dense_error]
        if not (policy == "dense" and hidden == ref) and changes:
            row.update(error_change=sum(changes) / len(changes), error_change_seeds=len(changes))
            if len(changes) > 1:
                row["error_change_low"], row["error_change_high"] = _t_interval(pd.Series(changes))
        row["realized_density"] = ", ".join(f"{sum(col) / n:.3f}" for col in zip(*g["realized_density"]))
        if "flop_ideal" in g and g["flop_ideal"].notna().any():
            row["flop_ideal"] = float(g["flop_ideal"].dropna().iloc[0])  # the first seed's: the model timed
        if "checkpoint_test_error" in g and g["checkpoint_test_error"].notna().any():
            # test_error is the timed inference's (16-bit, say); beside it the float32 checkpoint's
            row["checkpoint_test_error"] = float(g["checkpoint_test_error"].dropna().mean())
        if "error" in g and g["error"].notna().any():
            row["error"] = str(g["error"].dropna().iloc[0])
        if "load_flags" in g:
            row["load_flags"] = ",".join(sorted({f for v in g["load_flags"].dropna() for f in str(v).split(",") if f}))
        rows.append(row)
    return pd.DataFrame(rows)


def inference_where(models: pd.DataFrame) -> str:
    """Where the models' inference was timed, for a title ("inference on cuda in bfloat16"); "" for the
    CPU in float32 (rows from before devices say nothing, and mean that)."""
    device = models["device"].dropna().iloc[0] if "device" in models and models["device"].notna().any() else "cpu"
    dtype = (models["inference_dtype"].dropna().iloc[0]
             if "inference_dtype" in models and models["inference_dtype"].notna().any() else "float32")
    return "" if (device, dtype) == ("cpu", "float32") else f"inference on {device} in {dtype}"


def speed_summary(models: pd.DataFrame, speeds: pd.DataFrame) -> pd.DataFrame:
    """One row per policy x tau x hidden x batch over the seeds timed: the median speedup over the dense
    twin, and the envelope of the seeds' intervals (a conservative bound, not a new interval)."""
    if speeds.empty:
        return pd.DataFrame(columns=["policy", "tau", "hidden", "batch", "speedup", "speedup_ci_low", "speedup_ci_high"])
    timed = speeds.merge(_with_hidden(models)[["name", "policy", "tau", "hidden"]], on="name")
    return (timed.groupby(["policy", "tau", "hidden", "batch"], sort=False)
            .agg(speedup=("speedup", "median"), speedup_ci_low=("speedup_ci_low", "min"),
                 speedup_ci_high=("speedup_ci_high", "max")).reset_index())


def _with_hidden(models: pd.DataFrame) -> pd.DataFrame:
    """Rows of hand-made or old tables without a hidden shape are one shape."""
    return models if "hidden" in models else models.assign(hidden="")


def _error_interval(errors: pd.Series, examples: pd.Series | None) -> tuple[float, float] | None:
    """A 95% interval of the mean test error: the wider of the t-interval over the seeds (from two on)
    and the exact (Clopper-Pearson) binomial interval of the errors pooled over every seed's test
    images (where the rows say how many). Either alone misleads: three seeds can agree by chance (the
    dense net erred on 7 of 269 images on each of three splits), and a binomial interval knows nothing
    of the spread between training runs. Clipped to [0, 1]."""
    from scipy import stats

    bounds = [_t_interval(errors)] if len(errors) > 1 else []
    if examples is not None and examples.notna().all():
        total = int(examples.sum())
        wrong = int(round(float((errors * examples).sum())))
        low = stats.beta.ppf(0.025, wrong, total - wrong + 1) if wrong > 0 else 0.0
        high = stats.beta.ppf(0.975, wrong + 1, total - wrong) if wrong < total else 1.0
        bounds.append((float(low), float(high)))
    if not bounds:
        return None
    # An error rate lies in [0, 1]; the t-interval of three small errors can reach below 0.
    return max(0.0, min(b[0] for b in bounds)), min(1.0, max(b[1] for b in bounds))


def _t_interval(values: pd.Series) -> tuple[float, float]:
    """The 95% t-interval of the mean of at least two values."""
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean() - half, values.mean() + half
