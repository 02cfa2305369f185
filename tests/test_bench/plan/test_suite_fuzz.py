"""Generated suites: any value anywhere is either one UserError line or a suite whose every case is valid."""

from __future__ import annotations

import math
import re

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.core.errors import UserError
from bench.plan.cases import kernel_cases
from bench.plan.suite import MAX_BATCH, MAX_FEATURES, SWEPT_KEYS, parse_suite

BASE_SWEEP = {"name": "k", "batch": [4], "shape": [{"in_features": 64, "out_features": 64}], "block_size": [16],
              "density": [0.5]}
TOP_KEYS = ["name", "seed", "repeats", "threads", "cuda_graph_max_batch"]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "../x", "a/b", "4", "cpu", "cuda", "out",
                                                                     "both", "iid", "trained", "float32", "int8"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(["in_features", "out_features", "x"]), inner, max_size=3)),
    max_leaves=8)
# Values near the valid ones, so some generated suites pass and their cases get checked too.
plausible = st.one_of(values, st.lists(st.integers(min_value=-2, max_value=300), min_size=1, max_size=3),
                      st.lists(st.floats(min_value=-0.5, max_value=1.5), min_size=1, max_size=3),
                      st.lists(st.fixed_dictionaries({"in_features": st.integers(-1, 300),
                                                      "out_features": st.integers(-1, 300)}), min_size=1, max_size=2))


@st.composite
def suites(draw) -> str:
    sweep = dict(BASE_SWEEP)
    top: dict = {"name": "t", "repeats": 2, "threads": 1}
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "sweep", "include", "exclude"]))
        if where == "top":
            top[draw(st.sampled_from(TOP_KEYS))] = draw(st.one_of(values, st.integers(1, 2)))
        elif where == "sweep":
            sweep[draw(st.sampled_from(SWEPT_KEYS))] = draw(plausible)
        else:
            key = draw(st.sampled_from(SWEPT_KEYS))
            near = {"batch": st.integers(-1, 300), "block_size": st.sampled_from([0, 8, 16, 24, 48, 64]),
                    "density": st.floats(-0.5, 1.5), "shape": plausible}.get(key, scalars)
            sweep[where] = [{key: draw(st.one_of(values, near))}]
    return yaml.safe_dump({**top, "kernels": [sweep]}, allow_unicode=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suites())
def test_any_suite_is_one_line_error_or_all_valid_cases(text):
    try:
        suite = parse_suite(text, "gen.yaml")
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("gen.yaml")
        return
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", suite.name)
    for case in kernel_cases(suite):
        assert type(case.batch) is int and 1 <= case.batch <= MAX_BATCH
        assert type(case.block_size) is int and 1 <= case.block_size <= MAX_FEATURES
        assert case.in_features % case.block_size == 0 and case.out_features % case.block_size == 0
        assert type(case.density) is float and math.isfinite(case.density) and 0 < case.density <= 1
        assert case.device in ("cpu", "cuda") and case.dtype in ("float32", "float16", "bfloat16")
        assert case.masks in ("out", "both") and case.mask_source in ("iid", "clustered")
