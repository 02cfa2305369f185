"""condcore: conditional-computation models and the per-example block-sparse kernels they run on."""

from condcore.nn import BlockSparseLinear
from condcore.ops import block_sparse_linear

__all__ = ["BlockSparseLinear", "block_sparse_linear"]
__version__ = "0.1.0"
