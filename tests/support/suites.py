"""The one tiny suite of the tests that run `bench`: each test writes only how its own suite differs from
it, as data (`tiny_suite(repeats=5, kernels={"batch": [4, 64]})`), so what a test needs of its suite is
read at the test.

Its caches are warm unless a test asks for cold ones: a cold sample streams twice the last-level cache
through before every timed call, and on a machine whose sysfs reports a 480 MiB L3 each of those streams
took 0.1 s, which made a 24-case kill-and-resume suite run 110 s instead of 5. The tests that are about
cold samples (test_cache_state) build their cases themselves."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import yaml

TOP = {"name": "tiny", "repeats": 3, "threads": 1}
# 8 cases: two batches (the union and the grouped regime), two densities, output and both-side masks. Warm:
# a sweep on CUDA says cache: cold (do_bench flushes its L2 itself).
KERNELS = {"name": "k", "batch": [32, 2], "shape": [{"in_features": 64, "out_features": 128}], "block_size": [16],
           "density": [0.5, 0.25], "masks": ["out", "both"], "cache": "warm"}
# Two models on digits, two epochs, timed at batch 1 and 8. ONNX export and torch.compile cost seconds per
# model: the tests about them ask for those providers.
MODELS = {"dataset": "digits", "policies": ["dense", "reinforce"], "taus": [0.5], "hidden": [64, 64], "block_size": 16,
          "epochs": 2, "batches": [1, 8], "providers": ["ours", "torch"]}
# The kernel sweep of a suite with models: one case on the masks the trained CondNet chose.
TRAINED = {"name": "trained", "batch": [4], "shape": [{"in_features": 64, "out_features": 64}], "density": [0.5],
           "masks": None, "mask_source": ["trained"]}

SAME: Mapping = MappingProxyType({})


def tiny_suite(kernels: Mapping | None = SAME, models: Mapping | None = None, **top: object) -> str:
    """The tiny suite's YAML. `kernels` and `models` are changes to its kernel sweep and its models
    section (a key set to None is left out); kernels=None writes no kernel sweep, models=None (the default)
    no models section. Other keywords change the top level (name, repeats, threads)."""
    suite = dict(TOP) | top
    if kernels is not None:
        suite["kernels"] = [_changed(KERNELS, kernels)]
    if models is not None:
        suite["models"] = _changed(MODELS, models)
    return yaml.safe_dump(suite, sort_keys=False)


def _changed(base: Mapping, changes: Mapping) -> dict:
    return {key: value for key, value in (dict(base) | dict(changes)).items() if value is not None}
