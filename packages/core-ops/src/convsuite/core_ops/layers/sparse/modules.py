"""Sparse layers as modules: submanifold and strided convolution, max pool, batch norm, ReLU, pool."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import Tensor, nn

from convsuite.core_ops.layers.arguments import IntOrSeq, as_tuple
from convsuite.core_ops.layers.sparse.functional import (
    sparse_conv,
    sparse_global_pool,
    sparse_max_pool,
    submanifold_conv,
)
from convsuite.core_ops.layers.sparse.tensor import SparseTensor

__all__ = [
    "SparseBatchNorm",
    "SparseConv2d",
    "SparseConv3d",
    "SparseGlobalPool",
    "SparseMaxPool2d",
    "SparseMaxPool3d",
    "SparseReLU",
    "SubmanifoldConv2d",
    "SubmanifoldConv3d",
]


def _check_input(x: SparseTensor, dims: int, channels: int | None, name: str) -> None:
    if not isinstance(x, SparseTensor):
        raise ValueError(f"{name} takes a SparseTensor, got {type(x).__name__}")
    if x.spatial_dims != dims:
        raise ValueError(f"{name} needs {dims} spatial axes, got spatial_shape {x.spatial_shape}")
    if channels is not None and x.feats.shape[1] != channels:
        raise ValueError(f"{name} expects {channels} channels, got {x.feats.shape[1]}")


class _SparseConvNd(nn.Module):
    dims: ClassVar[int]
    submanifold: ClassVar[bool]

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq,
        stride: IntOrSeq,
        bias: bool,
    ) -> None:
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = as_tuple(kernel_size, self.dims, "kernel_size")
        self.stride = as_tuple(stride, self.dims, "stride")
        volume = math.prod(self.kernel_size)
        self.weight = nn.Parameter(torch.empty(volume, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's ``ConvNd`` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
        bound = 1.0 / math.sqrt(self.in_channels * self.weight.shape[0])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_input(x, self.dims, self.in_channels, type(self).__name__)
        if self.submanifold:
            return submanifold_conv(x, self.weight, self.bias, self.kernel_size)
        return sparse_conv(x, self.weight, self.bias, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        text = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        if not self.submanifold:
            text += f", stride={self.stride}"
        return text + ("" if self.bias is not None else ", bias=False")


class _SubmanifoldConvNd(_SparseConvNd):
    submanifold = True

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: IntOrSeq = 3, bias: bool = True
    ) -> None:
        kernel = as_tuple(kernel_size, self.dims, "kernel_size")
        if any(k % 2 == 0 for k in kernel):
            raise ValueError(f"a submanifold kernel must be odd, got {kernel}")
        super().__init__(in_channels, out_channels, kernel, 1, bias)


class SubmanifoldConv2d(_SubmanifoldConvNd):
    """Submanifold sparse convolution in 2-D: outputs at exactly the input's active sites.

    Equals ``F.conv2d(x.to_dense(), w, b, padding=k // 2)`` read at the active sites.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: odd window, int or (kH, kW).
        bias: add a learned bias.

    Shapes:
        input SparseTensor (N, C_in) on (B, H, W) -> output (N, C_out) on the same sites.
        weight (kH * kW, C_in, C_out); see :func:`weight_to_torch`, :func:`weight_to_spconv`.
    """

    dims = 2


class SubmanifoldConv3d(_SubmanifoldConvNd):
    """Submanifold sparse convolution in 3-D (see :class:`SubmanifoldConv2d`).

    Shapes:
        input SparseTensor (N, C_in) on (B, D, H, W) -> output (N, C_out) on the same sites.
        weight (kD * kH * kW, C_in, C_out).
    """

    dims = 3


class _StridedConvNd(_SparseConvNd):
    submanifold = False

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq = 2,
        stride: IntOrSeq = 2,
        bias: bool = True,
    ) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, bias)


class SparseConv2d(_StridedConvNd):
    """Strided sparse convolution in 2-D (downsampling), no padding.

    An output site is active when its window holds an active input site (for kernel == stride: the
    distinct ``coords // stride``). Equals ``F.conv2d(x.to_dense(), w, b, stride)`` there.

    Args:
        in_channels: C_in.
        out_channels: C_out.
        kernel_size: window, int or (kH, kW); any size >= 1. kernel == stride is the fast case
            (no (K, M) table; one input channel runs as an embedding bag, e.g. a wafer-map stem
            reading a full-resolution map through 16 x 16 windows).
        stride: int or (sH, sW).
        bias: add a learned bias.

    Shapes:
        input (N, C_in) on (B, H, W) -> output (M, C_out) on (B, (H - kH) // sH + 1, ...).
        weight (kH * kW, C_in, C_out).
    """

    dims = 2


class SparseConv3d(_StridedConvNd):
    """Strided sparse convolution in 3-D (see :class:`SparseConv2d`).

    Shapes:
        input (N, C_in) on (B, D, H, W) -> output (M, C_out) on (B, (D - kD) // sD + 1, ...).
        weight (kD * kH * kW, C_in, C_out).
    """

    dims = 3


class _SparseMaxPoolNd(nn.Module):
    dims: ClassVar[int]

    def __init__(self, kernel_size: IntOrSeq = 2, stride: IntOrSeq = 2) -> None:
        super().__init__()
        self.kernel_size = as_tuple(kernel_size, self.dims, "kernel_size")
        self.stride = as_tuple(stride, self.dims, "stride")

    def forward(self, x: SparseTensor) -> SparseTensor:
        _check_input(x, self.dims, None, type(self).__name__)
        return sparse_max_pool(x, self.kernel_size, self.stride)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class SparseMaxPool2d(_SparseMaxPoolNd):
    """Max pool over the active sites of each window in 2-D; output sites as :class:`SparseConv2d`.

    Shapes:
        input (N, C) on (B, H, W) -> output (M, C) on (B, (H - kH) // sH + 1, ...).
    """

    dims = 2


class SparseMaxPool3d(_SparseMaxPoolNd):
    """Max pool over the active sites of each window in 3-D; output sites as :class:`SparseConv3d`.

    Shapes:
        input (N, C) on (B, D, H, W) -> output (M, C) on (B, (D - kD) // sD + 1, ...).
    """

    dims = 3


class SparseBatchNorm(nn.Module):
    """Batch normalisation of the active sites' features (``nn.BatchNorm1d`` over the N rows).

    The statistics are over active sites only, never over the implicit zeros. Wraps an
    ``nn.BatchNorm1d`` as ``self.norm``, so ``nn.SyncBatchNorm.convert_sync_batchnorm`` converts it.

    Args:
        num_features: C.
        eps, momentum, affine, track_running_stats: as ``nn.BatchNorm1d``.

    Shapes:
        input (N, C) on any grid -> output (N, C) on the same sites.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x: SparseTensor) -> SparseTensor:
        if x.feats.shape[0] == 0:  # no statistics to take (and none to corrupt the running ones)
            return x
        return x.replace_feats(self.norm(x.feats))


class SparseReLU(nn.Module):
    """ReLU on the features. Any other pointwise function: ``x.replace_feats(fn(x.feats))``.

    Shapes:
        input (N, C) -> output (N, C) on the same sites.
    """

    def forward(self, x: SparseTensor) -> SparseTensor:
        return x.replace_feats(torch.relu(x.feats))


class SparseGlobalPool(nn.Module):
    """Average or max of each batch item's active-site features; an item with no sites gives zeros.

    Args:
        mode: "avg" or "max".

    Shapes:
        input (N, C) on (B, *spatial) -> output dense (B, C).
    """

    def __init__(self, mode: str = "avg") -> None:
        super().__init__()
        if mode not in ("avg", "max"):
            raise ValueError(f"mode must be 'avg' or 'max', got {mode!r}")
        self.mode = mode

    def forward(self, x: SparseTensor) -> Tensor:
        return sparse_global_pool(x, self.mode)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"
