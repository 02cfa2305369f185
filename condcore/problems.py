"""Random block-sparse linear problems, shared by the tests and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from condcore.masks import MASK_KINDS


@dataclass
class LinearProblem:
    x: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor | None
    in_mask: torch.Tensor | None
    out_mask: torch.Tensor | None
    block_size: int

    def args(self) -> tuple:
        return self.x, self.weight, self.bias, self.in_mask, self.out_mask, self.block_size

    def kwargs(self) -> dict:
        return {"in_mask": self.in_mask, "out_mask": self.out_mask, "block_size": self.block_size}

    def reference(self) -> torch.Tensor:
        """The expected output: the spec (reference_linear) on the inputs widened to float64. Computed
        on every call: a test may change the inputs in place (an optimizer step) between two."""
        from condcore.ops.reference import reference_linear

        bias = None if self.bias is None else self.bias.double()
        return reference_linear(self.x.double(), self.weight.double(), bias, self.in_mask, self.out_mask, self.block_size)

    def dense_reference(self) -> torch.Tensor:
        """The whole layer in float64, masks ignored: what a dense path (nn.Linear) computes."""
        y = self.x.double() @ self.weight.double().t()
        return y if self.bias is None else y + self.bias.double()


def make_problem(
    batch: int,
    in_features: int,
    out_features: int,
    block_size: int,
    *,
    in_density: float | None = 0.5,
    out_density: float | None = 0.5,
    bias: bool = True,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    generator: torch.Generator | None = None,
    mask_kind: str = "iid",
) -> LinearProblem:
    """Inputs scaled so outputs are of order 1 whatever the sizes; a density of None means no mask."""
    x = torch.randn(batch, in_features, generator=generator, dtype=torch.float64)
    weight = torch.randn(out_features, in_features, generator=generator, dtype=torch.float64) / in_features**0.5
    b = torch.randn(out_features, generator=generator, dtype=torch.float64) if bias else None

    def mask(density: float | None, n_blocks: int) -> torch.Tensor | None:
        if density is None:
            return None
        if mask_kind not in MASK_KINDS:
            raise ValueError(f"unknown mask kind {mask_kind!r}; choose {' or '.join(MASK_KINDS)}")
        return MASK_KINDS[mask_kind](batch, n_blocks, density, generator=generator, device=device)

    return LinearProblem(
        x=x.to(device=device, dtype=dtype),
        weight=weight.to(device=device, dtype=dtype),
        bias=None if b is None else b.to(device=device, dtype=dtype),
        in_mask=mask(in_density, in_features // block_size),
        out_mask=mask(out_density, out_features // block_size),
        block_size=block_size,
    )


def relative_error(p: LinearProblem, output: torch.Tensor, want: torch.Tensor | None = None) -> float:
    """max |output - float64 reference| / max |reference|; NaN if the output holds NaN. want: the
    reference, when it is computed already or is not the spec (p.dense_reference() for a dense path);
    p.reference() otherwise."""
    return relative_error_to(output, p.reference() if want is None else want)


def relative_error_to(output: torch.Tensor, want: torch.Tensor) -> float:
    """max |output - want| / max |want|, in float64; NaN if the output holds NaN."""
    return float((output.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-12))


def check_output(p: LinearProblem, output: torch.Tensor, want: torch.Tensor | None = None) -> tuple[float, str]:
    """(relative_error, why it fails or ""), against the tolerance of the output's dtype (want: see
    relative_error)."""
    err, tol = relative_error(p, output, want), RELATIVE_TOLERANCE[p.x.dtype]
    if not err <= tol:  # written so that NaN fails
        return err, f"max error {err:.3g} relative to max |y| exceeds {tol}"
    return err, ""


# Largest acceptable relative_error per dtype, for outputs of order 1 (fp32 allows TF32 on GPUs).
RELATIVE_TOLERANCE = {torch.float32: 2e-3, torch.float16: 2e-2, torch.bfloat16: 5e-2, torch.float64: 1e-10}
