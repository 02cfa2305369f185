"""Weights reordered once into oneDNN's blocked layout, per output block, for inference.

Why: oneDNN's inner product reorders a plain weight into its blocked layout on every call, which for a
sparse layer is one extra pass over each active block's weight per call. Inference engines pack once
(oneDNN, inductor's weight freezing); measured here (2 threads, fp32, B=1024, K=N=2048, k=128, iid
output masks) the per-block GEMMs ran 8-10% faster on packed blocks (d = 0.25: 11.1 against 12.2 ms).

Packing is opt-in, inside `frozen_weights()`: a packed copy cannot tell when its weight changes (fused
optimizers and writes through `.data` leave the version counter alone), so only a caller that knows
the weights are fixed may ask for it. The copies are dropped when the outermost block exits.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch


def onednn_linear_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def onednn_dtypes() -> tuple[torch.dtype, ...]:
    """The dtypes oneDNN's inner product takes on this CPU: bf16 only where the CPU has it (AVX-512
    BF16 or AMX); on an AVX2-only CPU oneDNN has no bf16 primitive at all and raises."""
    if not ONEDNN_LINEAR:
        return ()
    return (torch.float32, torch.bfloat16) if torch.ops.mkldnn._is_mkldnn_bf16_supported() else (torch.float32,)


ONEDNN_LINEAR = onednn_linear_available()
ONEDNN_DTYPES = onednn_dtypes()


def onednn_takes(dtype: torch.dtype) -> bool:
    """Whether oneDNN's inner product (torch.ops.mkldnn._linear_pointwise) runs here for this dtype."""
    return ONEDNN_LINEAR and dtype in ONEDNN_DTYPES


T = TypeVar("T")


@dataclass
class _Entry:
    ref: weakref.ref
    stamp: tuple
    packed: object


_cache: dict[tuple, _Entry] = {}
_lock = threading.Lock()
_frozen_depth = 0
_thawed = threading.local()  # inside unfrozen(): this thread's calls see no frozen weights
_thawed_depth = 0  # unfrozen() blocks open in any thread


@contextlib.contextmanager
def frozen_weights() -> Iterator[None]:
    """Within this block the CPU kernels may pack the weights they see and reuse the packed copies:
    the caller promises not to change those weights before the block exits."""
    global _frozen_depth
    with _lock:
        _frozen_depth += 1
    try:
        yield
    finally:
        with _lock:
            _frozen_depth -= 1
            if _frozen_depth == 0:
                _cache.clear()


@contextlib.contextmanager
def unfrozen() -> Iterator[None]:
    """Within this block, this thread's calls run as outside `frozen_weights()` (nothing packed, no packed
    copy used) while the enclosing block's copies stay kept: a benchmark times a direct call, as a
    training step or a one-off call makes it, beside the packed inference call of the same case."""
    global _thawed_depth
    before = getattr(_thawed, "on", False)
    _thawed.on = True
    with _lock:
        _thawed_depth += 1
    try:
        yield
    finally:
        with _lock:
            _thawed_depth -= 1
        _thawed.on = before


def frozen() -> bool:
    """Whether this thread's calls may pack weights now: inside `frozen_weights()`, not in `unfrozen()`.
    Where it holds, `frozen_copy` gives a copy, never None. Every small call asks, so the thread-local
    is read only while some thread is inside `unfrozen()`."""
    return bool(_frozen_depth) and not (_thawed_depth and getattr(_thawed, "on", False))


def packs_blocks(weight: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether `packed_blocks` gives weight's blocks in oneDNN's layout for an x of this dtype."""
    return (frozen() and weight.dtype == dtype and onednn_takes(dtype) and weight.device.type == "cpu"
            and weight.is_contiguous())


def packed_blocks(weight: torch.Tensor, block_size: int) -> list[torch.Tensor] | None:
    """weight's row blocks [j*k, (j+1)*k) in oneDNN's layout, or None outside `frozen_weights()` or
    where packing does not apply (then the caller uses the plain weight)."""
    if not packs_blocks(weight, weight.dtype) or weight.shape[0] % block_size:
        return None
    return frozen_copy(weight, [weight], ("onednn", block_size),
                       lambda: [torch.ops.mkldnn._reorder_linear_weight(weight[j : j + block_size])
                                for j in range(0, weight.shape[0], block_size)])


def frozen_copy(owner: object, tensors: Sequence[torch.Tensor], tag: Hashable, make: Callable[[], T]) -> T | None:
    """make()'s result (made under no_grad), kept for `owner` and `tag` until the outermost
    `frozen_weights()` block exits; None outside one. Made again if any of `tensors` has a new storage
    or version since (a resize is a new version), a cheap guard: the caller has promised not to change
    them."""
    if not frozen():
        return None
    stamp = tuple((t.data_ptr(), None if t.is_inference() else t._version) for t in tensors)
    key = (id(owner), tag)
    entry = _cache.get(key)
    if entry is None or entry.ref() is not owner or entry.stamp != stamp:
        with torch.no_grad():
            packed = make()
        entry = _Entry(weakref.ref(owner, lambda r, key=key: _forget(key, r)), stamp, packed)
        _cache[key] = entry
    return entry.packed


def _forget(key: tuple, entry_ref: weakref.ref) -> None:
    entry = _cache.get(key)
    if entry is not None and entry.ref is entry_ref:
        del _cache[key]
