"""U-Net for 2-D and 3-D segmentation with pluggable blocks (plain conv, ConvNeXt, reparam, DCLS)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool
from torch import Tensor, nn

from convsuite.core_ops.backbones.convnext import ConvNeXtBlock
from convsuite.core_ops.backbones.registry import register_backbone
from convsuite.core_ops.io import InputError

__all__ = ["BLOCKS", "UNet"]

# Block name -> depthwise mixer of the ConvNeXt block; "conv" is the plain double conv.
_MIXER_OF_BLOCK: dict[str, str] = {"convnext": "dense", "reparam": "reparam", "dcls": "dcls"}
BLOCKS: tuple[str, ...] = ("conv", *_MIXER_OF_BLOCK)


def _conv_block(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    norm: str | tuple,
    act: str | tuple,
) -> nn.Module:
    """Two (conv -> norm -> act) layers, MONAI ``Convolution`` (one code path for 1/2/3-D)."""
    return nn.Sequential(
        Convolution(
            spatial_dims, in_channels, out_channels, kernel_size=kernel_size, norm=norm, act=act
        ),
        Convolution(
            spatial_dims, out_channels, out_channels, kernel_size=kernel_size, norm=norm, act=act
        ),
    )


def _mixer_block(
    in_channels: int,
    out_channels: int,
    mixer: str,
    kernel_size: int,
    mixer_kwargs: Mapping[str, Any] | None,
) -> nn.Module:
    """1x1 projection to ``out_channels``, then one ConvNeXt block with the given mixer (2-D).

    No layer scale: in a shallow U-Net a 1e-6 start would leave the block an identity for long.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1),
        ConvNeXtBlock(
            out_channels,
            mixer,
            kernel_size,
            layer_scale_init_value=0.0,
            mixer_kwargs=mixer_kwargs,
        ),
    )


@register_backbone(
    "unet2d_small", spatial_dims=2, in_channels=1, out_channels=2, channels=(16, 32, 64, 128)
)
@register_backbone(
    "unet3d_small", spatial_dims=3, in_channels=1, out_channels=2, channels=(16, 32, 64, 128)
)
class UNet(nn.Module):
    """U-Net: contracting path, expanding path, skip connections by concatenation.

    Ronneberger, Fischer, Brox, "U-Net: Convolutional Networks for Biomedical Image Segmentation",
    MICCAI 2015, Fig. 1, and its 3-D form (Cicek et al., "3D U-Net", MICCAI 2016): at each level a
    block, then 2x max pooling; on the way up a 2x transposed conv, concatenation with the skip,
    a block; a final 1x1 conv gives per-voxel logits. Convs are "same" padded, so the output has the
    input's size (which must be divisible by ``2 ** (len(channels) - 1)``).

    Blocks (``block``):

    * ``"conv"``: two (conv k^D -> norm -> act) layers built with MONAI's ``Convolution``; any
      ``spatial_dims`` (1, 2, 3), as MONAI's ``BasicUNet`` (instance norm, LeakyReLU by default).
    * ``"convnext"``, ``"reparam"``, ``"dcls"``: a 1x1 projection then a
      :class:`~convsuite.core_ops.backbones.convnext.ConvNeXtBlock` whose depthwise mixer is dense,
      :class:`~convsuite.core_ops.layers.reparam.DilatedReparamConv2d` or
      :class:`~convsuite.core_ops.layers.dcls.DCLSConv2d` (2-D only: these mixers are 2-D layers).

    Args:
        spatial_dims: D, 1, 2 or 3.
        in_channels: input channels.
        out_channels: output channels (classes, as logits).
        channels: channels per level, top to bottom; len(channels) - 1 poolings.
        block: one of :data:`BLOCKS`.
        kernel_size: conv window of ``"conv"`` blocks.
        mixer_kernel_size: mixer window of ``"convnext"``/``"reparam"`` blocks (ignored by dcls).
        norm: MONAI norm spec for ``"conv"`` blocks.
        act: MONAI activation spec for ``"conv"`` blocks.
        mixer_kwargs: extra arguments for the mixers.

    Shapes:
        input (N, in_channels, *spatial) -> logits (N, out_channels, *spatial).

    Raises:
        ValueError: unknown block, or a 2-D-only block with ``spatial_dims != 2``.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (16, 32, 64, 128),
        block: str = "conv",
        kernel_size: int = 3,
        mixer_kernel_size: int = 7,
        norm: str | tuple = ("instance", {"affine": True}),
        act: str | tuple = ("leakyrelu", {"negative_slope": 0.1, "inplace": False}),
        mixer_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if spatial_dims not in (1, 2, 3):
            raise ValueError(f"spatial_dims must be 1, 2 or 3, got {spatial_dims}")
        if block not in BLOCKS:
            raise ValueError(f"unknown block {block!r}; choose one of {', '.join(BLOCKS)}")
        if block != "conv" and spatial_dims != 2:
            raise ValueError(
                f"block {block!r} exists only in 2-D (its mixer is a 2-D layer); got "
                f"spatial_dims={spatial_dims}: use block='conv' for {spatial_dims}-D"
            )
        if len(channels) < 2:
            raise ValueError(f"channels needs at least two levels, got {tuple(channels)}")
        self.spatial_dims = spatial_dims
        self.levels = len(channels)

        def make_block(c_in: int, c_out: int) -> nn.Module:
            if block == "conv":
                return _conv_block(spatial_dims, c_in, c_out, kernel_size, norm, act)
            return _mixer_block(
                c_in, c_out, _MIXER_OF_BLOCK[block], mixer_kernel_size, mixer_kwargs
            )

        pool = Pool[Pool.MAX, spatial_dims]
        up = Conv[Conv.CONVTRANS, spatial_dims]
        self.encoder = nn.ModuleList([make_block(in_channels, channels[0])])
        for c_prev, c in zip(channels[:-1], channels[1:], strict=True):
            self.encoder.append(nn.Sequential(pool(2), make_block(c_prev, c)))
        self.upsamplers = nn.ModuleList()
        self.decoder = nn.ModuleList()
        for c, c_below in zip(reversed(channels[:-1]), reversed(channels[1:]), strict=True):
            self.upsamplers.append(up(c_below, c, kernel_size=2, stride=2))
            self.decoder.append(make_block(2 * c, c))
        self.head = Conv[Conv.CONV, spatial_dims](channels[0], out_channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        factor = 2 ** (self.levels - 1)
        if x.dim() != self.spatial_dims + 2 or any(s % factor for s in x.shape[2:]):
            raise InputError(
                "input",
                f"UNet needs (N, C, *spatial) with {self.spatial_dims} spatial axes each divisible "
                f"by {factor}, got {tuple(x.shape)}",
            )
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        skips.pop()
        for upsample, stage in zip(self.upsamplers, self.decoder, strict=True):
            x = stage(torch.cat((upsample(x), skips.pop()), dim=1))
        return self.head(x)
