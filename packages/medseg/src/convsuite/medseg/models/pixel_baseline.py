"""The pixel-wise baseline HybridGNet is compared with: a MONAI U-Net, one sigmoid channel per organ.

The paper's U-Net baseline (Gaggion et al., TMI 2022, Table II) predicts per-pixel organ labels; organs
may overlap (heart over the left lung), so we use independent sigmoid channels, trained with
Dice + binary cross-entropy.

The ``small`` preset (the bundled ``unet_small`` weights) has widths (8, 16, 32, 64, 128), a quarter of
the usual (16, ..., 256) of the ``paper`` preset in compute: it is trained on a 2-core CPU beside
HybridGNet, and on phantoms the narrower U-Net already reaches Dice above 0.95.
"""

from __future__ import annotations

from dataclasses import dataclass

from monai.networks.nets import UNet

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import Pretrained, register_model
from convsuite.medseg.data.landmarks import LUNGS_AND_HEART, ORGAN_SIZES


@dataclass(frozen=True)
class UNetBaselineConfig(ModelConfig):
    """Architecture of the U-Net baseline.

    Attributes:
        image_size: side of the square input the network is trained and run at, pixels (a
            multiple of 2^(len(widths) - 1)).
        organs: one output channel per organ, in this order.
        widths: channels per resolution level; a 2x stride between levels.
        num_res_units: residual units per level (MONAI ``UNet``).
    """

    image_size: int = 1024
    organs: tuple[str, ...] = LUNGS_AND_HEART
    widths: tuple[int, ...] = (16, 32, 64, 128, 256)
    num_res_units: int = 2

    def __post_init__(self) -> None:
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(f"the U-Net needs 2 or more positive widths, got {self.widths}")
        if self.num_res_units < 0 or self.image_size < 1:
            raise ValueError("image_size must be >= 1 and num_res_units >= 0")
        if self.image_size % 2 ** (len(self.widths) - 1):
            raise ValueError(
                f"image_size must be a multiple of {2 ** (len(self.widths) - 1)}, "
                f"got {self.image_size}"
            )
        unknown = [organ for organ in self.organs if organ not in ORGAN_SIZES]
        if unknown or not self.organs:
            raise ValueError(f"organs must be some of {', '.join(ORGAN_SIZES)}, got {self.organs}")


@register_model(
    "unet_baseline",
    presets={
        "paper": UNetBaselineConfig(),
        "small": UNetBaselineConfig(image_size=256, widths=(8, 16, 32, 64, 128)),
        "tiny": UNetBaselineConfig(image_size=64, widths=(4, 8, 16), num_res_units=1),
    },
)
class UNetBaseline(Pretrained, UNet):
    """MONAI ``UNet`` (2-D, residual units, 2x strides): (B, 1, S, S) -> (B, n_organs, S, S) logits.

    Load the bundled weights with ``UNetBaseline.from_pretrained("unet_small")``.

    Args:
        config: architecture (:class:`UNetBaselineConfig`).
    """

    config_class = UNetBaselineConfig
    bundled_package = "convsuite.medseg"
    default_weights = "unet_small"

    def __init__(self, config: UNetBaselineConfig) -> None:
        super().__init__(
            spatial_dims=2,
            in_channels=1,
            out_channels=len(config.organs),
            channels=config.widths,
            strides=(2,) * (len(config.widths) - 1),
            num_res_units=config.num_res_units,
        )
        self.config = config
