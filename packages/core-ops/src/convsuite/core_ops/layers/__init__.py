"""Convolution layers. Each accelerated layer keeps a plain reference path that tests compare against."""

from convsuite.core_ops.layers.complex import (
    ComplexBatchNorm2d,
    ComplexConv2d,
    CReLU,
    ModReLU,
    PseudoComplexConv2d,
    channels_to_complex,
    complex_to_channels,
)
from convsuite.core_ops.layers.dcls import DCLSConv1d, DCLSConv2d, DCLSConv3d
from convsuite.core_ops.layers.fft_conv import FFTConv1d, FFTConv2d, fft_conv, large_kernel_conv
from convsuite.core_ops.layers.graph import ChebConv, NodeResample, scaled_laplacian
from convsuite.core_ops.layers.hypercomplex import PHConv1d, PHConv2d, PHConv3d, PHLinear
from convsuite.core_ops.layers.mixer import MIXERS, create_mixer
from convsuite.core_ops.layers.multidilated import D2Block, D3Block, MultiDilatedConv2d
from convsuite.core_ops.layers.reparam import (
    DilatedReparamConv2d,
    assert_reparam_equivalent,
    reparameterize_model,
)

__all__ = [
    "MIXERS",
    "ComplexBatchNorm2d",
    "ComplexConv2d",
    "CReLU",
    "ChebConv",
    "D2Block",
    "D3Block",
    "DCLSConv1d",
    "DCLSConv2d",
    "DCLSConv3d",
    "DilatedReparamConv2d",
    "FFTConv1d",
    "FFTConv2d",
    "ModReLU",
    "MultiDilatedConv2d",
    "NodeResample",
    "PHConv1d",
    "PHConv2d",
    "PHConv3d",
    "PHLinear",
    "PseudoComplexConv2d",
    "assert_reparam_equivalent",
    "channels_to_complex",
    "complex_to_channels",
    "create_mixer",
    "fft_conv",
    "large_kernel_conv",
    "reparameterize_model",
    "scaled_laplacian",
]
