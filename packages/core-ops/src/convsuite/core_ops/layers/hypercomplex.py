"""Parameterized hypercomplex (PHM / PHC) layers: a weight built as a sum of Kronecker products.

Zhang et al., "Beyond Fully-Connected Layers with Quaternions: Parameterization of Hypercomplex
Multiplications with 1/n Parameters", ICLR 2021, Eq. (4), and Grassucci, Zhang & Comminiello,
"PHNNs: Lightweight Neural Networks via Parameterized Hypercomplex Convolutions", IEEE TNNLS 2022,
Eq. (6): the real weight of a layer is

    W = sum_{i=1..n} A_i ⊗ F_i,

with n learnable algebra matrices ``A_i`` (n, n), which learn the multiplication rule of an
n-dimensional hypercomplex algebra (n = 4 can learn the Hamilton product), and n filters ``F_i``
(out/n, in/n, *kernel). The layer holds about 1/n of the parameters of the real layer
(n^3 + out * in * prod(kernel) / n), and costs one weight construction per forward on top of the
ordinary convolution.

Unlike the HyperNets reference code, ``A`` and ``F`` are registered parameters (in the state dict,
moved by ``.to()``), the bias is applied, and nothing assumes a GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsuite.core_ops.layers.arguments import IntOrSeq, as_tuple
from convsuite.core_ops.layers.factories import conv_function

__all__ = ["PHConv1d", "PHConv2d", "PHConv3d", "PHLinear", "kronecker_sum"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def kronecker_sum(algebra: Tensor, filters: Tensor) -> Tensor:
    """``sum_i kron(algebra[i], filters[i])`` over the leading axis, in one einsum.

    The Kronecker product acts on the first two axes of each filter (output and input channels);
    trailing kernel axes are carried along, so ``W[a*o + p, b*c + q, ...] = sum_i A[i, a, b]
    F[i, p, q, ...]``.

    Args:
        algebra: (n, n, n) algebra matrices A.
        filters: (n, o, c, *kernel) filters F.

    Returns:
        (n * o, n * c, *kernel) weight, dtype and device of the inputs.
    """
    n, o, c, *kernel = filters.shape
    if algebra.shape != (n, n, n):
        raise ValueError(f"algebra must be ({n}, {n}, {n}), got {tuple(algebra.shape)}")
    flat = filters.reshape(n, o, c, -1)
    weight = torch.einsum("iab,ipqk->apbqk", algebra, flat)
    return weight.reshape(n * o, n * c, *kernel)


def _check_divisible(n: int, in_features: int, out_features: int, groups: int) -> None:
    if n < 1:
        raise ValueError(f"n must be a positive integer, got {n}")
    if in_features % groups or out_features % groups:
        raise ValueError(
            f"in ({in_features}) and out ({out_features}) channels must be divisible by "
            f"groups ({groups})"
        )
    if (in_features // groups) % n or out_features % n:
        raise ValueError(
            f"PH layers need in/groups ({in_features // groups}) and out ({out_features}) "
            f"divisible by n ({n})"
        )


def _reset_ph_parameters(
    algebra: Tensor, filters: Tensor, bias: Tensor | None, fan_in: int
) -> None:
    """Start ``kronecker_sum(A, F)`` at the scale of torch's default conv/linear weight.

    ``A`` ~ U(-sqrt(3/n), sqrt(3/n)) (variance 1/n) and ``F`` ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (torch's kaiming_uniform(a=sqrt(5)) bound for the *full* layer's fan-in). Each weight entry is a
    sum of n independent products, so its variance is n * (1/n) * 1/(3 fan_in) = 1/(3 fan_in),
    that of ``nn.Conv``/``nn.Linear``. The bias follows torch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    n = algebra.shape[0]
    bound_a = math.sqrt(3.0 / n)
    bound_f = 1.0 / math.sqrt(fan_in)
    with torch.no_grad():
        algebra.uniform_(-bound_a, bound_a)
        filters.uniform_(-bound_f, bound_f)
        if bias is not None:
            bias.uniform_(-bound_f, bound_f)


class _PHConvNd(nn.Module):
    """Dimension-agnostic PHC convolution; subclasses fix ``spatial_dims``."""

    spatial_dims: int

    def __init__(
        self,
        n: int,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq,
        stride: IntOrSeq = 1,
        padding: IntOrSeq | str = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        dims = self.spatial_dims
        _check_divisible(n, in_channels, out_channels, groups)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got {padding_mode!r}")
        self.n = n
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = as_tuple(kernel_size, dims, "kernel_size")
        self.stride = as_tuple(stride, dims, "stride")
        self.dilation = as_tuple(dilation, dims, "dilation")
        self.groups = groups
        self.padding_mode = padding_mode
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}"
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' needs stride 1")
            self.padding: tuple[int, ...] | str = padding
        else:
            self.padding = as_tuple(padding, dims, "padding")
        # (left, right) per axis, last axis first: the layout F.pad expects.
        sides = []
        for k, d, p in zip(self.kernel_size, self.dilation, self._explicit_padding(), strict=True):
            total = d * (k - 1) if self.padding == "same" else 2 * p
            sides.append((total // 2, total - total // 2))
        self._pad = [side for pair in reversed(sides) for side in pair]

        in_per_group = in_channels // groups
        self.A = nn.Parameter(torch.empty(n, n, n))
        self.F = nn.Parameter(
            torch.empty(n, out_channels // n, in_per_group // n, *self.kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def _explicit_padding(self) -> tuple[int, ...]:
        return (0,) * self.spatial_dims if isinstance(self.padding, str) else self.padding

    def reset_parameters(self) -> None:
        """Initialize A, F and bias (see ``_reset_ph_parameters``)."""
        fan_in = (self.in_channels // self.groups) * math.prod(self.kernel_size)
        _reset_ph_parameters(self.A, self.F, self.bias, fan_in)

    @property
    def weight(self) -> Tensor:
        """(out, in / groups, *kernel) real weight ``sum_i A_i ⊗ F_i``, rebuilt from A and F."""
        return kronecker_sum(self.A, self.F)

    def forward(self, x: Tensor) -> Tensor:
        """(N, in, *spatial) -> (N, out, *out_spatial), as ``nn.Conv{1,2,3}d`` with this weight."""
        if x.dim() != self.spatial_dims + 2:
            raise ValueError(
                f"{type(self).__name__} expects (N, C, *spatial) with {self.spatial_dims} spatial "
                f"axes, got {tuple(x.shape)}"
            )
        conv = conv_function(self.spatial_dims)
        if self.padding_mode != "zeros":
            x = F.pad(x, self._pad, mode=self.padding_mode)
            padding: tuple[int, ...] | str = 0
        else:
            padding = self.padding
        return conv(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        text = (
            f"n={self.n}, {self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}"
        )
        if any(d != 1 for d in self.dilation):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class PHConv1d(_PHConvNd):
    """Parameterized hypercomplex 1-D convolution (Grassucci et al., IEEE TNNLS 2022, Eq. 6).

    Weight ``sum_{i=1..n} A_i ⊗ F_i`` with algebra ``A`` (n, n, n) and filters ``F``
    (n, out/n, in/(groups n), k); n^3 + out * in/groups * k / n weights instead of
    out * in/groups * k. Input (N, in, L) -> output (N, out, L_out); unitless, any float dtype.

    Args:
        n: algebra dimension (number of Kronecker terms); in/groups and out divisible by n.
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode: as in ``torch.nn.Conv1d``.
    """

    spatial_dims = 1


class PHConv2d(_PHConvNd):
    """Parameterized hypercomplex 2-D convolution (Grassucci et al., IEEE TNNLS 2022, Eq. 6).

    Weight ``sum_{i=1..n} A_i ⊗ F_i`` with algebra ``A`` (n, n, n) and filters ``F``
    (n, out/n, in/(groups n), kh, kw); n^3 + out * in/groups * kh kw / n weights instead of
    out * in/groups * kh kw. Input (N, in, H, W) -> output (N, out, H_out, W_out).

    Args:
        n: algebra dimension (number of Kronecker terms); in/groups and out divisible by n.
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode: as in ``torch.nn.Conv2d``.
    """

    spatial_dims = 2


class PHConv3d(_PHConvNd):
    """Parameterized hypercomplex 3-D convolution (Grassucci et al., IEEE TNNLS 2022, Eq. 6).

    Weight ``sum_{i=1..n} A_i ⊗ F_i`` with algebra ``A`` (n, n, n) and filters ``F``
    (n, out/n, in/(groups n), kd, kh, kw). Input (N, in, D, H, W) -> (N, out, D_out, H_out, W_out).

    Args:
        n: algebra dimension (number of Kronecker terms); in/groups and out divisible by n.
        in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
            padding_mode: as in ``torch.nn.Conv3d``.
    """

    spatial_dims = 3


class PHLinear(nn.Module):
    """Parameterized hypercomplex multiplication layer, PHM (Zhang et al., ICLR 2021, Eq. 4).

    ``y = x W^T + b`` with ``W = sum_{i=1..n} A_i ⊗ F_i``, ``A`` (n, n, n), ``F``
    (n, out/n, in/n): n^3 + in * out / n weights instead of in * out. Input (..., in) ->
    output (..., out).

    Args:
        n: algebra dimension; in_features and out_features divisible by n.
        in_features, out_features, bias: as in ``torch.nn.Linear``.
    """

    def __init__(self, n: int, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        _check_divisible(n, in_features, out_features, 1)
        self.n = n
        self.in_features = in_features
        self.out_features = out_features
        self.A = nn.Parameter(torch.empty(n, n, n))
        self.F = nn.Parameter(torch.empty(n, out_features // n, in_features // n))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Initialize A, F and bias (see ``_reset_ph_parameters``)."""
        _reset_ph_parameters(self.A, self.F, self.bias, self.in_features)

    @property
    def weight(self) -> Tensor:
        """(out, in) real weight ``sum_i A_i ⊗ F_i``, rebuilt from A and F."""
        return kronecker_sum(self.A, self.F)

    def forward(self, x: Tensor) -> Tensor:
        """(..., in) -> (..., out)."""
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
