"""Inception-style block of parallel dilated branches, square or factorized (k x 1 then 1 x k).

After the encoder and decoder blocks of IVD-Net (Dolz, Desrosiers & Ben Ayed, "IVD-Net:
Intervertebral disc localization and segmentation in MRI with a multi-modal UNet", MICCAI 2018
IVDM3Seg challenge, arXiv 1811.08305, Fig. 2; reference code josedolz/IVD-Net ``IVD_Net.py``,
``Conv_residual_conv_Inception_Dilation[_asymmetric]``): a 3 x 3 convolution, then parallel
branches of kernel k and dilation d whose outputs are concatenated, fused by a 1 x 1 convolution,
added to the first convolution's output (residual) and passed through a last 3 x 3 convolution.
Every convolution is followed by batch normalization and ReLU, as in the reference.

A factorized ("asymmetric") branch is a k x 1 convolution then a 1 x k one (each with BN + ReLU),
both at dilation d: the same (d (k - 1) + 1)^2 receptive field as a square k x k branch at 2k
instead of k^2 weights per channel pair. Any 2-D architecture that wants multi-scale context at
full resolution can use the block (segmentation encoders, dense prediction heads).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["IVDNET_BRANCHES", "DilatedBranch", "InceptionDilatedBlock", "conv_bn_relu"]

IVDNET_BRANCHES: tuple[tuple[int, int], ...] = ((1, 1), (3, 1), (5, 1), (3, 2), (3, 4))
"""(kernel, dilation) of IVD-Net's five branches: k = 1, 3, 5, 3 dilated 2, 3 dilated 4."""


def conv_bn_relu(
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int] = 3,
    dilation: int | tuple[int, int] = 1,
) -> nn.Sequential:
    """``Conv2d`` (with bias, "same" zero padding) -> ``BatchNorm2d`` -> ``ReLU``.

    Shapes: (N, C_in, H, W) -> (N, C_out, H, W) for odd kernel sizes.
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel sizes must be odd, got {(kh, kw)}")
    padding = (dh * (kh // 2), dw * (kw // 2))
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, (kh, kw), padding=padding, dilation=(dh, dw)),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class DilatedBranch(nn.Sequential):
    """One branch: k x k at dilation d, or (asymmetric) k x 1 then 1 x k, each conv + BN + ReLU.

    Args:
        channels: C, input and output channels.
        kernel_size: k, odd.
        dilation: d.
        asymmetric: factorize into k x 1 then 1 x k (IVD-Net's encoder) instead of k x k (decoder).

    Shapes: (N, C, H, W) -> (N, C, H, W); receptive field (d (k - 1) + 1)^2 either way.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int, asymmetric: bool) -> None:
        if kernel_size < 1 or dilation < 1:
            raise ValueError(
                f"kernel_size and dilation must be >= 1, got {kernel_size}, {dilation}"
            )
        if asymmetric:
            super().__init__(
                conv_bn_relu(channels, channels, (kernel_size, 1), (dilation, 1)),
                conv_bn_relu(channels, channels, (1, kernel_size), (1, dilation)),
            )
        else:
            super().__init__(conv_bn_relu(channels, channels, kernel_size, dilation))
        self.kernel_size, self.dilation = kernel_size, dilation


class InceptionDilatedBlock(nn.Module):
    """conv3x3 -> parallel dilated branches -> concat -> conv1x1 -> + residual -> conv3x3.

    ``h = c3(x); y = c3'(c1(cat[b_1(h), ..., b_B(h)]) + h)``, every conv followed by BN + ReLU
    (IVD-Net's encoder block with ``asymmetric=True``, its decoder block with ``False``).

    Args:
        in_channels: C_in.
        out_channels: C_out, also the width of every branch.
        branches: (kernel, dilation) per branch; default IVD-Net's five (:data:`IVDNET_BRANCHES`).
        asymmetric: factorized k x 1 / 1 x k branches instead of square k x k ones.

    Shapes:
        input (N, C_in, H, W) -> output (N, C_out, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        branches: Sequence[tuple[int, int]] = IVDNET_BRANCHES,
        asymmetric: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"channels must be >= 1, got {in_channels}, {out_channels}")
        if not branches:
            raise ValueError("the block needs at least one branch")
        self.conv_in = conv_bn_relu(in_channels, out_channels, 3)
        self.branches = nn.ModuleList(
            DilatedBranch(out_channels, k, d, asymmetric) for k, d in branches
        )
        self.fuse = conv_bn_relu(len(self.branches) * out_channels, out_channels, 1)
        self.conv_out = conv_bn_relu(out_channels, out_channels, 3)
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        fused = self.fuse(torch.cat([branch(h) for branch in self.branches], dim=1))
        return self.conv_out(fused + h)
