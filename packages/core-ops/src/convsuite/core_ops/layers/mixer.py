"""Depthwise spatial mixers by name: the token mixer of ConvNeXt-style blocks.

A mixer maps (N, C, H, W) -> (N, C, H, W) with one spatial filter per channel ("same" padding), so
ConvNeXt, UniRepLKNet and U-Net blocks can swap the 7x7 depthwise conv of Liu et al. (CVPR 2022)
for a DCLS, dilated re-parameterized or FFT one without other changes. A string-to-builder map, as
timm's ``create_act_layer`` / ``get_act_layer``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from convsuite.core_ops.layers.dcls import DCLSConv2d
from convsuite.core_ops.layers.fft_conv import FFTConv2d
from convsuite.core_ops.layers.reparam import DilatedReparamConv2d

__all__ = ["DCLS_CONVNEXT_DEFAULTS", "MIXERS", "create_mixer"]

# DCLS-ConvNeXt-T: Khalfaoui-Hassani, Pellegrini, Masquelier, "Dilated convolution with learnable
# spacings", ICLR 2023, Sec. 5 (ConvNeXt experiments), and the official model file
# K-H-Ismail/ConvNeXt-dcls models/convnext_dcls.py: every 7x7 depthwise conv becomes a DCLS conv of
# 34 taps in a 17x17 window (ConvNeXt-S/B use 40 taps; pass ``kernel_count=40``).
DCLS_CONVNEXT_DEFAULTS: dict[str, int] = {"kernel_count": 34, "dilated_kernel_size": 17}


def _check_odd(name: str, size: int) -> None:
    if size < 1 or size % 2 == 0:
        raise ValueError(f"mixer {name!r} needs an odd kernel size for 'same' padding, got {size}")


def _dense(channels: int, kernel_size: int, **kwargs: Any) -> nn.Module:
    _check_odd("dense", kernel_size)
    return nn.Conv2d(
        channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, **kwargs
    )


def _fft(channels: int, kernel_size: int, **kwargs: Any) -> nn.Module:
    _check_odd("fft", kernel_size)
    return FFTConv2d(
        channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, **kwargs
    )


def _dcls(channels: int, kernel_size: int, **kwargs: Any) -> nn.Module:
    # ``kernel_size`` (the dense window of the other mixers) does not apply: DCLS has its own
    # ``dilated_kernel_size`` window holding ``kernel_count`` learnable taps.
    config = {**DCLS_CONVNEXT_DEFAULTS, **kwargs}
    window = config["dilated_kernel_size"]
    _check_odd("dcls", window)
    return DCLSConv2d(channels, channels, padding=window // 2, groups=channels, **config)


def _reparam(channels: int, kernel_size: int, **kwargs: Any) -> nn.Module:
    return DilatedReparamConv2d(channels, kernel_size, **kwargs)


_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "dense": _dense,
    "dcls": _dcls,
    "reparam": _reparam,
    "fft": _fft,
}

MIXERS: tuple[str, ...] = tuple(_BUILDERS)


def create_mixer(name: str, channels: int, kernel_size: int = 7, **kwargs: Any) -> nn.Module:
    """Build a depthwise spatial mixer by name: (N, C, H, W) -> (N, C, H, W), "same" padding.

    Mixers:

    * ``"dense"``: ``nn.Conv2d`` depthwise ``kernel_size`` x ``kernel_size`` (ConvNeXt, Liu et al.,
      CVPR 2022, Sec. 2.5: 7x7).
    * ``"dcls"``: :class:`~convsuite.core_ops.layers.dcls.DCLSConv2d` depthwise, with
      ``kernel_count=34`` taps in a ``dilated_kernel_size=17`` window by default (DCLS-ConvNeXt-T,
      Khalfaoui-Hassani et al., ICLR 2023; see :data:`DCLS_CONVNEXT_DEFAULTS`). ``kernel_size`` is
      not used. Unlike the paper, positions are not shared between the blocks of a stage, and the
      interpolation is the layer's default (``version="gauss"``, the authors' later Gaussian
      variant); pass ``version="v1"`` for the paper's bilinear one.
    * ``"reparam"``: :class:`~convsuite.core_ops.layers.reparam.DilatedReparamConv2d` (UniRepLKNet's
      Dilated Reparam Block, Ding et al., CVPR 2024); ``kernel_size`` odd and >= 5.
    * ``"fft"``: :class:`~convsuite.core_ops.layers.fft_conv.FFTConv2d` depthwise, the dense mixer
      computed by FFT (same weights, faster for large kernels).

    Args:
        name: one of :data:`MIXERS`.
        channels: C, input and output channels.
        kernel_size: spatial window of the dense, fft and reparam mixers, odd.
        **kwargs: passed to the layer's constructor (e.g. ``bias=False`` for dense/fft,
            ``kernel_count``/``dilated_kernel_size``/``version`` for dcls, ``deploy`` for reparam).

    Returns:
        The mixer module.

    Raises:
        ValueError: unknown ``name`` (the message lists :data:`MIXERS`) or an even window.
    """
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown mixer {name!r}; choose one of {', '.join(MIXERS)}") from None
    return builder(channels, kernel_size, **kwargs)
