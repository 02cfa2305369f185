"""Is it worth it? Each trained model against the dense frontier, as data.

A model's *figure of record* at a batch size is its fastest correct provider (bench.core.model_providers):
what a user would ship. A *family* is one policy x tau x hidden shape over its seeds. The rules, which the
reports state:

- **As accurate.** Dense family D is as accurate as CondNet family C when D's test error, paired per seed
  over the seeds both were trained on (each seed is its own train/test split), is on average not worse:
  mean(error_D(s) - error_C(s)) <= 0. Ties qualify. The 95% interval of that mean (`paired_change`: the
  wider of the t-interval over the seeds and the binomial one over their test images) is kept, and a
  faster dense net that misses the rule but whose interval reaches 0 (not shown to be worse) is named
  beside the pick: the data cannot tell it apart from the CondNet in accuracy.
- **The iso-accuracy speedup** of C is over the fastest (by median time) dense family as accurate as
  it, at each batch size: the per-round ratio of the two figures of record where both were timed in the
  same interleaved rounds (their rows share a timing group), with its 95% bootstrap interval; otherwise
  the ratio of medians with an interval that resamples each series on its own (marked unpaired).
- **Budgets.** Within each test-error budget (the rise over the same-shape dense twin's error, paired
  per seed), the fastest model of all, CondNets and dense nets of every width and provider alike.
"""

from __future__ import annotations

import math

import pandas as pd

from condcore.timing import bootstrap_interval, independent_ratio_interval, median, ratio_samples

ERROR_BUDGETS = (0.0, 0.005, 0.01, 0.02, math.inf)  # the test error's rise over the dense twin's, as a fraction
FAMILY = ["policy", "tau", "hidden"]


def figures_of_record(times: pd.DataFrame) -> pd.DataFrame:
    """Per model and batch size, its fastest correct provider's time (the model_times columns)."""
    if times.empty or "median_s" not in times:
        return pd.DataFrame(columns=["name", "batch", "provider", "median_s"])
    ok = times[(times["status"] == "ok") & times["median_s"].notna()]
    if ok.empty:
        return pd.DataFrame(columns=["name", "batch", "provider", "median_s"])
    return ok.loc[ok.groupby(["name", "batch"])["median_s"].idxmin()].reset_index(drop=True)


def paired_change(a: dict[int, float], b: dict[int, float], examples_a: dict[int, float] | None = None,
                  examples_b: dict[int, float] | None = None) -> dict:
    """mean(a[s] - b[s]) over the seeds both have, the number of seeds, and a 95% interval: the wider of
    the t-interval over the seeds (from two on) and, where the test set sizes are known, the normal
    interval of a difference of two error rates over all those seeds' test images. Either alone
    misleads, as for one model's error (bench.analysis.models_summary): seeds can agree by chance, and one seed
    has no spread at all, though 269 digits images cannot tell 6 errors from 7. The binomial part treats
    the two models' errors as independent; on shared images they are positively correlated, so it is
    wider than a paired (McNemar) interval would be. NaN where they share no seed (no interval: NaN)."""
    from scipy import stats

    seeds = [s for s in sorted(a) if s in b]
    diffs = [a[s] - b[s] for s in seeds]
    n = len(diffs)
    if n == 0:
        return {"change": math.nan, "low": math.nan, "high": math.nan, "seeds": 0}
    mean = sum(diffs) / n
    bounds = []
    if n >= 2:
        sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
        bounds.append((mean - half, mean + half))
    sizes = [(examples_a or {}).get(s) for s in seeds] + [(examples_b or {}).get(s) for s in seeds]
    if all(isinstance(v, (int, float)) and v == v and v > 0 for v in sizes):
        na, nb = sum(sizes[:n]), sum(sizes[n:])
        pa = sum(a[s] * (examples_a or {})[s] for s in seeds) / na
        pb = sum(b[s] * (examples_b or {})[s] for s in seeds) / nb
        half = stats.norm.ppf(0.975) * math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
        bounds.append((mean - half, mean + half))
    if not bounds:
        return {"change": mean, "low": math.nan, "high": math.nan, "seeds": n}
    return {"change": mean, "low": min(lo for lo, _ in bounds), "high": max(hi for _, hi in bounds), "seeds": n}


def pair_speedup(numerator: dict, denominator: dict) -> dict:
    """numerator's time over denominator's (two figure-of-record records): the median per-round ratio
    and its bootstrap interval where both were timed in the same rounds, else the ratio of medians with
    an unpaired interval (none without samples)."""
    a, b = numerator.get("samples"), denominator.get("samples")
    has = [isinstance(s, list) and len(s) > 0 for s in (a, b)]
    same_group = (numerator.get("timing_group") is not None
                  and numerator.get("timing_group") == denominator.get("timing_group"))
    if all(has) and same_group and len(a) == len(b):
        ratios = ratio_samples(a, b)
        low, high = bootstrap_interval(ratios)
        return {"speedup": median(ratios), "speedup_low": low, "speedup_high": high, "paired": True}
    speedup = numerator["median_s"] / denominator["median_s"]
    low, high = independent_ratio_interval(a, b) if all(has) else (math.nan, math.nan)
    return {"speedup": speedup, "speedup_low": low, "speedup_high": high, "paired": False}


def _families(models: pd.DataFrame, records: pd.DataFrame) -> list[dict]:
    """One per policy x tau x hidden: its errors by seed, and per batch its figure-of-record record (from
    whichever of its seeds' models was timed; failed models are left out)."""
    by_name = {name: g.to_dict("records") for name, g in records.groupby("name")} if not records.empty else {}
    families = []
    for key, g in models.groupby(FAMILY, sort=False):
        if "error" in g:
            g = g[~g["error"].apply(lambda e: isinstance(e, str))]
        if g.empty:
            continue
        timed = {}
        for name in g["name"]:
            for rec in by_name.get(name, []):
                timed.setdefault(int(rec["batch"]), rec)
        examples = (dict(zip(g["seed"].astype(int), pd.to_numeric(g["test_examples"], errors="coerce")))
                    if "test_examples" in g else {})
        families.append({**dict(zip(FAMILY, key)), "errors": dict(zip(g["seed"].astype(int), g["test_error"].astype(float))),
                         "examples": examples, "timed": timed})
    return families


def _width(hidden: str) -> str:
    """'64x64' -> '64'; a net whose layers differ keeps its shape."""
    parts = str(hidden).split("x")
    return parts[0] if len(set(parts)) == 1 else str(hidden)


def label(policy: str, tau: float, hidden: str, reference_hidden: str | None = None) -> str:
    """How reports name a family: 'reinforce τ = 0.25', 'dense w = 64' (the width where it is not the
    CondNets' shape, whose dense twin is plain 'dense'); a CondNet of another shape than the most common
    (the paper's 640x640 block dropout beside its 512x512x512 CondNet) says its shape."""
    if policy == "dense":
        return "dense" if hidden == reference_hidden else f"dense w = {_width(hidden)}"
    named = f"{policy} τ = {tau:g}"
    return named if reference_hidden is None or hidden == reference_hidden else f"{named} h{hidden}"


def reference_hidden(models: pd.DataFrame) -> str | None:
    """The CondNets' hidden shape (the most common among them), whose dense net is every CondNet's twin;
    without CondNets, the widest dense net's."""
    if models.empty or "hidden" not in models:
        return "" if not models.empty else None
    cond = models[models["policy"] != "dense"]
    if not cond.empty:
        return str(cond["hidden"].mode().iloc[0])
    return max(models["hidden"].astype(str), key=lambda h: int(h.split("x")[0]) if h.split("x")[0].isdigit() else 0)


def iso_accuracy(models: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """Per CondNet family and batch size: the fastest dense family as accurate (the module's rule) and
    the CondNet's speedup over it with its interval, or verdict "no dense net is as accurate"; the dense
    family timed fastest among those the data cannot tell apart from it but the rule excludes."""
    if models.empty:
        return pd.DataFrame()
    families = _families(models, figures_of_record(times))
    dense = [f for f in families if f["policy"] == "dense"]
    rows = []
    for c in (f for f in families if f["policy"] != "dense"):
        for batch, cond in sorted(c["timed"].items()):
            row = {"policy": c["policy"], "tau": c["tau"], "hidden": c["hidden"], "batch": batch,
                   "provider": cond["provider"], "median_s": cond["median_s"]}
            candidates = []
            for d in dense:
                if batch not in d["timed"]:
                    continue
                change = paired_change(d["errors"], c["errors"], d["examples"], c["examples"])
                if change["seeds"]:
                    candidates.append((d, change))
            qualifying = [(d, ch) for d, ch in candidates if ch["change"] <= 1e-12]
            if not qualifying:
                rows.append({**row, "verdict": "no dense net is as accurate"})
                continue
            d, change = min(qualifying, key=lambda dc: dc[0]["timed"][batch]["median_s"])
            pick = d["timed"][batch]
            row.update(verdict="compared", dense_hidden=d["hidden"], dense_provider=pick["provider"],
                       dense_median_s=pick["median_s"], error_change=change["change"],
                       error_change_low=change["low"], error_change_high=change["high"], seeds=change["seeds"],
                       **pair_speedup(pick, cond))
            noise = [(e, ch) for e, ch in candidates
                     if ch["change"] > 1e-12 and ch["low"] <= 0 and e["timed"][batch]["median_s"] < pick["median_s"]]
            if noise:
                e, ch = min(noise, key=lambda dc: dc[0]["timed"][batch]["median_s"])
                row.update(within_noise_hidden=e["hidden"], within_noise_provider=e["timed"][batch]["provider"],
                           within_noise_change=ch["change"],
                           within_noise_speedup=pair_speedup(e["timed"][batch], cond)["speedup"])
            rows.append(row)
    return pd.DataFrame(rows)


def fastest_within_budget(models: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """Per error budget and batch size, the fastest model of all (CondNets and dense nets of every width
    and provider) whose test error is at most the budget above the dense twin's, paired per seed; with
    its speedup over the dense twin's figure of record and whether it is conditional."""
    if models.empty:
        return pd.DataFrame()
    ref = reference_hidden(models)
    families = _families(models, figures_of_record(times))
    twin = next((f for f in families if f["policy"] == "dense" and f["hidden"] == ref), None)
    if twin is None:
        return pd.DataFrame()
    candidates = []
    for f in families:
        change = paired_change(f["errors"], twin["errors"], f["examples"], twin["examples"])
        if change["seeds"]:
            candidates.append((f, change["change"]))
    rows = []
    batches = sorted({b for f, _ in candidates for b in f["timed"]})
    for budget in ERROR_BUDGETS:
        for batch in batches:
            within = [(f, ch) for f, ch in candidates if ch <= budget + 1e-12 and batch in f["timed"]]
            if not within:
                continue
            f, change = min(within, key=lambda fc: fc[0]["timed"][batch]["median_s"])
            rec = f["timed"][batch]
            row = {"budget": budget, "batch": batch, "policy": f["policy"], "tau": f["tau"], "hidden": f["hidden"],
                   "provider": rec["provider"], "median_s": rec["median_s"], "conditional": f["policy"] != "dense",
                   "error_change": change, "label": label(f["policy"], f["tau"], f["hidden"], ref)}
            if batch in twin["timed"]:
                row.update({k: v for k, v in pair_speedup(twin["timed"][batch], rec).items()})
            rows.append(row)
    return pd.DataFrame(rows)


def dense_frontier(models: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """Per dense family and batch size: its mean test error over its seeds and its figure of record,
    narrowest first: the line the Pareto plot draws."""
    if models.empty:
        return pd.DataFrame()
    rows = []
    for f in _families(models, figures_of_record(times)):
        if f["policy"] != "dense":
            continue
        errors = list(f["errors"].values())
        for batch, rec in f["timed"].items():
            rows.append({"hidden": f["hidden"], "width": int(str(f["hidden"]).split("x")[0]), "batch": batch,
                         "test_error": sum(errors) / len(errors), "seeds": len(errors), "provider": rec["provider"],
                         "median_s": rec["median_s"]})
    return pd.DataFrame(rows).sort_values(["batch", "width"]).reset_index(drop=True) if rows else pd.DataFrame()
