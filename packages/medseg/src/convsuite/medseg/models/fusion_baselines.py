"""The multi-modal fusion baselines IVD-Net is compared with: MONAI ``UNet``s, early and late fusion.

IVD-Net's paper (Dolz et al., arXiv 1811.08305, Sec. 3) compares its per-modality paths with
simpler ways of fusing the four Dixon images: *early fusion* stacks them as the input channels of
one UNet; *late fusion* runs one UNet per modality and merges their last feature maps with a
1 x 1 convolution. Both are MONAI ``UNet``s (residual units, 2x strides) with IVD-Net's widths:
``ngf * (1, 2, 4, 8, 16)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.networks.nets import UNet
from torch import nn

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import Pretrained, register_model
from convsuite.medseg.data.ivdm3seg import MODALITIES
from convsuite.medseg.models.volume_segmenter import VolumeSegmenter


@dataclass(frozen=True)
class FusionUNetConfig(ModelConfig):
    """Architecture of a fusion baseline.

    Attributes:
        ngf: width of the first level; the five levels have ``ngf * (1, 2, 4, 8, 16)``.
        modalities: input channels, in order.
        classes: output channels (softmax).
        num_res_units: residual units per level (MONAI ``UNet``).
        features: late fusion only: channels each modality's UNet hands to the 1 x 1 fusion.
        slice_size: side of the training slices, pixels (any multiple of 16 works).
        pixel_mm: in-plane pixel size the weights expect, mm.
    """

    ngf: int = 32
    modalities: tuple[str, ...] = MODALITIES
    classes: int = 2
    num_res_units: int = 2
    features: int = 8
    slice_size: int = 256
    pixel_mm: float = 1.25

    def __post_init__(self) -> None:
        if min(self.ngf, self.features) < 1 or self.classes < 2 or not self.modalities:
            raise ValueError("ngf and features >= 1, classes >= 2, at least one modality")
        if self.slice_size % 16 or self.num_res_units < 0 or self.pixel_mm <= 0:
            raise ValueError("slice_size a multiple of 16, num_res_units >= 0, pixel_mm > 0")

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.ngf * 2**level for level in range(5))


_PRESETS = {
    "paper": FusionUNetConfig(),
    "small": FusionUNetConfig(ngf=8, slice_size=128, pixel_mm=2.5),
    "tiny": FusionUNetConfig(ngf=2, num_res_units=1, features=2, slice_size=64, pixel_mm=2.5),
}


@register_model("unet_early_fusion", presets=_PRESETS)
class EarlyFusionUNet(VolumeSegmenter, Pretrained, UNet):
    """Early fusion: one MONAI ``UNet`` on the stacked modalities, (B, M, H, W) -> (B, K, H, W).

    Args:
        config: architecture (:class:`FusionUNetConfig`).
    """

    config_class = FusionUNetConfig
    bundled_package = "convsuite.medseg"

    def __init__(self, config: FusionUNetConfig) -> None:
        super().__init__(
            spatial_dims=2,
            in_channels=len(config.modalities),
            out_channels=config.classes,
            channels=config.widths,
            strides=(2, 2, 2, 2),
            num_res_units=config.num_res_units,
        )
        self.config = config


@register_model("unet_late_fusion", presets=_PRESETS)
class LateFusionUNet(VolumeSegmenter, Pretrained, nn.Module):
    """Late fusion: one MONAI ``UNet`` per modality, their feature maps merged by a 1 x 1 conv.

    Shapes: (B, M, H, W) -> (B, K, H, W) logits.

    Args:
        config: architecture (:class:`FusionUNetConfig`).
    """

    config_class = FusionUNetConfig
    bundled_package = "convsuite.medseg"

    def __init__(self, config: FusionUNetConfig) -> None:
        super().__init__()
        self.config = config
        self.paths = nn.ModuleList(
            UNet(
                spatial_dims=2,
                in_channels=1,
                out_channels=config.features,
                channels=config.widths,
                strides=(2, 2, 2, 2),
                num_res_units=config.num_res_units,
            )
            for _ in config.modalities
        )
        self.fuse = nn.Sequential(
            nn.BatchNorm2d(len(config.modalities) * config.features),
            nn.ReLU(inplace=True),
            nn.Conv2d(len(config.modalities) * config.features, config.classes, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [path(x[:, i : i + 1]) for i, path in enumerate(self.paths)]
        return self.fuse(torch.cat(features, dim=1))
