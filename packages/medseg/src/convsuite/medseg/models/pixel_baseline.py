"""The pixel-wise baseline HybridGNet is compared with: a MONAI U-Net, one sigmoid channel per organ.

The paper's U-Net baseline (Gaggion et al., TMI 2022, Table II) predicts per-pixel organ labels; organs
may overlap (heart over the left lung), so we use independent sigmoid channels, trained with
Dice + binary cross-entropy.

Widths default to (8, 16, 32, 64, 128), a quarter of the usual (16, ..., 256) in compute: the bundled
baseline is trained on a 2-core CPU beside HybridGNet, and on phantoms the narrower U-Net already
reaches Dice above 0.95. Pass ``widths`` for the wider network.
"""

from __future__ import annotations

from monai.networks.nets import UNet
from torch import nn

PIXEL_BASELINE_WIDTHS = (8, 16, 32, 64, 128)


def pixel_baseline(n_organs: int, widths: tuple[int, ...] = PIXEL_BASELINE_WIDTHS) -> nn.Module:
    """MONAI ``UNet`` (2-D, residual units, 2x strides): (B, 1, S, S) -> (B, n_organs, S, S) logits."""
    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=n_organs,
        channels=widths,
        strides=(2,) * (len(widths) - 1),
        num_res_units=2,
    )
