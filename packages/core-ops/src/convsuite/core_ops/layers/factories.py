"""One way to pick a convolution for 1, 2 or 3 spatial dimensions, after MONAI's layer factories
(``Conv[Conv.CONV, spatial_dims]``), which are not used here: importing MONAI's layers loads its
metrics, scikit-image and scipy (~1.7 s), and core-ops' layers must stay cheap to import.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
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
    """``nn.Conv1d``, ``nn.Conv2d`` or ``nn.Conv3d``."""
    return (nn.Conv1d, nn.Conv2d, nn.Conv3d)[check_spatial_dims(spatial_dims) - 1]


def batch_norm_class(spatial_dims: int) -> type[nn.Module]:
    """``nn.BatchNorm1d``, ``nn.BatchNorm2d`` or ``nn.BatchNorm3d``."""
    return (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[check_spatial_dims(spatial_dims) - 1]
