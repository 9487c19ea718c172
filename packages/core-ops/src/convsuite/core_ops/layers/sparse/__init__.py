"""Submanifold sparse convolution in plain PyTorch (CPU first; any device torch runs on).

After Graham & van der Maaten, "Submanifold Sparse Convolutional Networks" (arXiv:1706.01307,
2017) and Graham, Engelcke & van der Maaten, "3D Semantic Segmentation with Submanifold Sparse
Convolutional Networks" (CVPR 2018). A :class:`SparseTensor` holds only the active sites of a batch
of D-dimensional grids. A submanifold convolution computes outputs at exactly the input's active
sites, so the active set does not dilate layer after layer; a strided sparse convolution or max
pool downsamples it, an output site being active when its window holds an active input site.

How it is computed (one module per step):

* ``tensor``: :class:`SparseTensor`, coordinates (N, 1 + D) int64 batch first, features (N, C).
* ``rulebook``: sites become sorted int64 keys; neighbours are found for all sites at once with
  ``torch.searchsorted`` and vectorised walks (no Python loop over sites). A :class:`Rulebook`
  lists, per kernel tap, the (input row, output row) pairs it connects. Rulebooks are cached in a
  dict shared by all tensors on the same sites, so every layer at one resolution reuses them; a
  downsampling layer caches its coarse sites too.
* ``functional``: gather -> one ``bmm`` over all taps -> one sparse CSR matmul that sums the
  products into the outputs; backward gathers again instead of storing copies. Also the slow,
  obvious dense references (:func:`sparse_conv_reference`, :func:`sparse_max_pool_reference`) that
  the tests and the benchmark compare against.
* ``modules``: the ``nn.Module`` layers.

Weights are ``(K, C_in, C_out)`` with the K kernel taps in row-major order over the window (first
spatial axis slowest): ``weight[k]`` is tap ``k`` of torch's ``(C_out, C_in, *kernel)`` flattened.
:func:`weight_to_torch`, :func:`weight_to_spconv` and :func:`weight_from_spconv` convert; spconv
2.x stores ``(C_out, *kernel, C_in)``.
"""

from convsuite.core_ops.layers.sparse.functional import (
    sparse_conv,
    sparse_conv_reference,
    sparse_global_pool,
    sparse_max_pool,
    sparse_max_pool_reference,
    submanifold_conv,
    weight_from_spconv,
    weight_to_spconv,
    weight_to_torch,
)
from convsuite.core_ops.layers.sparse.modules import (
    SparseBatchNorm,
    SparseConv2d,
    SparseConv3d,
    SparseGlobalPool,
    SparseMaxPool2d,
    SparseMaxPool3d,
    SparseReLU,
    SubmanifoldConv2d,
    SubmanifoldConv3d,
)
from convsuite.core_ops.layers.sparse.rulebook import (
    Rulebook,
    downsample_rulebook,
    submanifold_rulebook,
)
from convsuite.core_ops.layers.sparse.tensor import SparseTensor

__all__ = [
    "Rulebook",
    "SparseBatchNorm",
    "SparseConv2d",
    "SparseConv3d",
    "SparseGlobalPool",
    "SparseMaxPool2d",
    "SparseMaxPool3d",
    "SparseReLU",
    "SparseTensor",
    "SubmanifoldConv2d",
    "SubmanifoldConv3d",
    "downsample_rulebook",
    "sparse_conv",
    "sparse_conv_reference",
    "sparse_global_pool",
    "sparse_max_pool",
    "sparse_max_pool_reference",
    "submanifold_conv",
    "submanifold_rulebook",
    "weight_from_spconv",
    "weight_to_spconv",
    "weight_to_torch",
]
