"""One way to pick a convolution for 1, 2 or 3 spatial dimensions (after MONAI's layer factories).

Module classes come from MONAI's ``Conv[Conv.CONV, spatial_dims]`` / ``Norm[Norm.BATCH,
spatial_dims]`` factories; the functional forms (``F.conv1d/2d/3d``, ``F.max_pool*d``), which MONAI
has no factory for, from :func:`conv_function` and :func:`max_pool_function`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from monai.networks.layers.factories import Conv, Norm
from torch import Tensor, nn

__all__ = [
    "batch_norm_class",
    "check_spatial_dims",
    "conv_class",
    "conv_function",
    "max_pool_function",
]


def check_spatial_dims(spatial_dims: int) -> int:
    """``spatial_dims`` if it is 1, 2 or 3; ValueError otherwise."""
    if spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
    return spatial_dims


def conv_function(spatial_dims: int) -> Callable[..., Tensor]:
    """``F.conv1d``, ``F.conv2d`` or ``F.conv3d``."""
    return (F.conv1d, F.conv2d, F.conv3d)[check_spatial_dims(spatial_dims) - 1]


def max_pool_function(spatial_dims: int) -> Callable[..., Tensor]:
    """``F.max_pool1d``, ``F.max_pool2d`` or ``F.max_pool3d``."""
    return (F.max_pool1d, F.max_pool2d, F.max_pool3d)[check_spatial_dims(spatial_dims) - 1]


def conv_class(spatial_dims: int) -> type[nn.Module]:
    """``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d`` (MONAI's factory)."""
    return Conv[Conv.CONV, check_spatial_dims(spatial_dims)]


def batch_norm_class(spatial_dims: int) -> type[nn.Module]:
    """``nn.BatchNorm1d``, ``nn.BatchNorm2d`` or ``nn.BatchNorm3d`` (MONAI's factory)."""
    return Norm[Norm.BATCH, check_spatial_dims(spatial_dims)]
