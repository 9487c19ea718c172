"""LayerNorm over the channels of channels-first feature maps, as used by ConvNeXt and UniRepLKNet."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LayerNorm2d"]


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over C of a (N, C, H, W) tensor: ConvNeXt's "channels_first" LayerNorm.

    Follows Liu et al., "A ConvNet for the 2020s", CVPR 2022 (Sec. 2.6, LN in the stem and the
    downsampling layers). Instead of the official module's explicit mean/variance over dim 1 (four
    extra passes over memory), the tensor is viewed as (N, H, W, C) and normalized by the fused
    ``F.layer_norm`` kernel, as in timm's ``LayerNorm2d``. On a channels_last input (the layout the
    backbones keep) both permutes are free and the output stays channels_last.

    Args:
        num_channels: C.
        eps: added to the variance; 1e-6 as in ConvNeXt.

    Shapes:
        input (N, C, H, W) -> output (N, C, H, W); parameters ``weight``, ``bias`` of shape (C,).
    """

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__(num_channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)
