"""Argument checks for block_sparse_linear: every bad input becomes one clear ValueError."""

from __future__ import annotations

from typing import NamedTuple

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def mixed_precision(x_dtype: torch.dtype, weight_dtype: torch.dtype) -> bool:
    """An fp32 weight (and bias) with fp16/bf16 activations, as under autocast: the weight is rounded
    to x's dtype, block by block where a kernel can, and its gradient comes back in fp32."""
    return weight_dtype == torch.float32 and x_dtype in (torch.float16, torch.bfloat16)


class LinearShape(NamedTuple):  # a NamedTuple: made on every call, 0.3 us against a frozen dataclass's 1 us
    batch: int
    in_features: int
    out_features: int
    block_size: int

    # Rounded up: a side without a mask need not be a multiple of the block size (a CondNet's first
    # layer reads raw features); its last block is then partial.
    @property
    def in_blocks(self) -> int:
        return -(-self.in_features // self.block_size)

    @property
    def out_blocks(self) -> int:
        return -(-self.out_features // self.block_size)


def _check_mask(name: str, mask: torch.Tensor | None, batch: int, n_blocks: int, device: torch.device) -> None:
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must have dtype torch.bool, got {mask.dtype}")
    if tuple(mask.shape) != (batch, n_blocks):
        raise ValueError(f"{name} must have shape (batch, n_blocks) = ({batch}, {n_blocks}), got {tuple(mask.shape)}")
    if mask.device != device:
        raise ValueError(f"{name} is on {mask.device} but x is on {device}")


def validate_linear_args(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    in_mask: torch.Tensor | None,
    out_mask: torch.Tensor | None,
    block_size: int,
) -> LinearShape:
    """Checks every argument of block_sparse_linear and returns the problem's sizes."""
    if not isinstance(x, torch.Tensor) or not isinstance(weight, torch.Tensor):
        raise ValueError("x and weight must be torch.Tensors")
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (batch, in_features), got shape {tuple(x.shape)}")
    if weight.dim() != 2:
        raise ValueError(f"weight must be 2-D (out_features, in_features), got shape {tuple(weight.shape)}")
    if x.dtype not in FLOAT_DTYPES:
        raise ValueError(f"x must be a floating tensor (fp16, bf16, fp32, fp64), got {x.dtype}")
    if weight.dtype != x.dtype and not mixed_precision(x.dtype, weight.dtype):
        raise ValueError(f"weight dtype {weight.dtype} differs from x dtype {x.dtype} "
                         "(the one mix allowed: an fp32 weight with fp16/bf16 x)")
    device = x.device
    if weight.device != device:
        raise ValueError(f"weight is on {weight.device} but x is on {device}")
    batch, in_features = x.shape
    out_features, w_in = weight.shape
    if w_in != in_features:
        raise ValueError(f"weight has {w_in} input features but x has {in_features}")
    if batch == 0:
        raise ValueError("x has an empty batch")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size <= 0:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    if in_features % block_size and out_features % block_size:
        # Only an unmasked side may end in a partial block, and a layer has at least one blocked side.
        raise ValueError(f"block_size {block_size} divides neither in_features {in_features} "
                         f"nor out_features {out_features}")
    if in_mask is not None and in_features % block_size:
        raise ValueError(f"block_size {block_size} must divide in_features {in_features} when in_mask is given")
    if out_mask is not None and out_features % block_size:
        raise ValueError(f"block_size {block_size} must divide out_features {out_features} when out_mask is given")
    if bias is not None:
        if not isinstance(bias, torch.Tensor) or tuple(bias.shape) != (out_features,):
            shape = tuple(bias.shape) if isinstance(bias, torch.Tensor) else type(bias).__name__
            raise ValueError(f"bias must have shape ({out_features},), got {shape}")
        if bias.dtype != weight.dtype:
            raise ValueError(f"bias dtype {bias.dtype} differs from weight dtype {weight.dtype}")
        if bias.device != device:
            raise ValueError(f"bias is on {bias.device} but x is on {device}")
    shape = LinearShape(batch, in_features, out_features, block_size)
    if in_mask is not None:
        _check_mask("in_mask", in_mask, batch, shape.in_blocks, device)
    if out_mask is not None:
        _check_mask("out_mask", out_mask, batch, shape.out_blocks, device)
    return shape


def _byte_span(t: torch.Tensor) -> tuple[int, int]:
    """[first, last) byte addresses a tensor can touch (torch strides are never negative)."""
    start = t.data_ptr()
    return start, start + (sum((n - 1) * s for n, s in zip(t.shape, t.stride())) + 1) * t.element_size()


def shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a and b may touch the same bytes: tensors of different allocations never do (torch's own
    overlap check reasons the same way); views of one allocation do where their byte ranges intersect,
    which is conservative for interleaved views and never wrong the other way."""
    if a.untyped_storage().data_ptr() != b.untyped_storage().data_ptr():
        return False  # the common case, kept cheap: this runs on every call with out=
    if a.numel() == 0 or b.numel() == 0 or a.device != b.device:
        return False
    (a0, a1), (b0, b1) = _byte_span(a), _byte_span(b)
    return a0 < b1 and b0 < a1


def validate_out(out: torch.Tensor, x: torch.Tensor, shape: LinearShape, inputs: dict[str, torch.Tensor | None]) -> None:
    """out's shape, dtype, device and layout, and that it shares no memory with any input: every kernel
    writes y while it still reads x and the weight (torch's own ops refuse such overlaps too)."""
    if not isinstance(out, torch.Tensor):
        raise ValueError(f"out must be a torch.Tensor or None, got {type(out).__name__}")
    if tuple(out.shape) != (shape.batch, shape.out_features):
        raise ValueError(f"out must have shape ({shape.batch}, {shape.out_features}), got {tuple(out.shape)}")
    if out.dtype != x.dtype or out.device != x.device:
        raise ValueError(f"out must be {x.dtype} on {x.device}, got {out.dtype} on {out.device}")
    if not out.is_contiguous():
        raise ValueError("out must be contiguous")
    if out.requires_grad:  # every path writes it in place: autograd would refuse on one, be bypassed on others
        raise ValueError("out must not require grad: it is an output buffer, written in place")
    for name, tensor in inputs.items():
        if tensor is not None and shares_memory(out, tensor):
            raise ValueError(f"out shares memory with {name}; pass a separate output tensor")
