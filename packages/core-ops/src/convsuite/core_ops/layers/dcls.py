"""Dilated Convolution with Learnable Spacings (DCLS).

Khalfaoui-Hassani, Pellegrini, Masquelier, "Dilated convolution with learnable spacings", ICLR 2023
(bilinear interpolation, version ``'v1'``), and "Dilated convolution with learnable spacings: beyond
bilinear interpolation", ICML 2023 workshop / arXiv 2306.00817 (Gaussian interpolation, version
``'gauss'``). A kernel of ``kernel_count`` taps, each with a learnable weight and a learnable real
position inside a ``dilated_kernel_size`` window, is rendered into a dense kernel by interpolation and
then convolved.

Compatibility with the authors' package (PyPI ``dcls``, ``DCLS.construct.modules.Dcls{1,2,3}d``):
same constructor arguments, same parameter names and shapes (``weight (C_out, C_in/groups,
kernel_count)``, ``P (D, C_out, C_in/groups, kernel_count)``, ``SIG`` like ``P`` for ``'gauss'``), same
initialization and the same interpolation formulas, so their state dict loads into ours and gives the
same output and gradients (``tests/test_dcls.py`` checks this against the package). As in theirs,
``P[j]`` is the position along spatial axis ``D - 1 - j`` (x first, then y, then z).

What differs, and why:

* Kernel construction does not evaluate every (tap, grid position) pair. Bilinear ``'v1'`` scatters
  the 2^D corner weights of each tap: O(kernel_count * 2^D) per channel pair. ``'gauss'`` uses the
  separability of an axis-aligned Gaussian (and of its normalization) to build each kernel as a sum
  of outer products of 1-D profiles: O(kernel_count * sum(dilated_kernel_size)) exponentials, and
  in 2-D one (H x K) by (K x W) matrix product, O(kernel_count * H * W) multiply-adds per channel
  pair (the reference's order, but no exponential per entry).
* Gaussian kernel entries below the square root of the smallest normal float32 (1.1e-19,
  :func:`flush_threshold`) are set to zero in value; their
  gradient passes as if unflushed (all-zero weights still learn). Subnormal entries make the
  reference's CPU convolution ~25x slower, and entries just above the smallest normal still give
  subnormal products with activations; a flushed entry changes an output by at most 1.1e-19 times
  the input's largest magnitude.
* 2-D float32/float64 CPU kernels are rendered by one compiled pass forward and one backward
  (:mod:`~convsuite.core_ops.layers.dcls_kernels`; ``FUSED_RENDERING = False`` restores the torch
  ops), and the layer renders only the taps its input reaches (a 17x17 window on a 4x4 map
  renders its central 7x7).
* Positions are clamped to the dilated kernel inside ``forward`` (the reference only clamps when the
  user calls ``clamp_parameters()``); inside that range both agree exactly.
* For non-square windows the reference centres and clamps ``P[j]`` with the size of axis ``j``
  although it moves along axis ``D - 1 - j``; we use the size of the axis the position moves along.
  Square windows (every published configuration) are unaffected.
* The convolution itself goes through :func:`~convsuite.core_ops.layers.fft_conv.large_kernel_conv`,
  which routes large windows to torch's direct forward with an FFT weight gradient, or to the FFT
  path (the dense kernel is up to 31x31 in DCLS-ConvNeXt).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsuite.core_ops.layers.arguments import as_tuple
from convsuite.core_ops.layers.fft_conv import large_kernel_conv, reached_taps

__all__ = ["DCLSConv1d", "DCLSConv2d", "DCLSConv3d", "construct_kernel"]

_VERSIONS = ("v1", "gauss")
# Initial SIG of the Gaussian version, as in the reference (spread 0.5 at start).
_SIGMA_INIT = 0.23
# 2-D float32/float64 CPU kernels are rendered by dcls_kernels.RenderDCLS (one compiled pass
# forward and one backward instead of ~20 small torch ops each); False: always the torch ops.
FUSED_RENDERING = True
# Added to |SIG| in the Gaussian version, as in the reference (keeps the spread away from zero).
SIGMA_FLOOR = 0.27
# Added to the interpolation normalizer, as in the reference.
NORM_EPS = 1e-7


def flush_threshold(dtype: torch.dtype) -> float:
    """Gaussian kernel entries below this are zero in value (their gradient passes): the square
    root of the smallest normal number of ``dtype`` (1.1e-19 in float32 and bfloat16, 1.5e-154 in
    float64), of float32 for 16-bit floats (float16's own would be 7.8e-3 and zero real entries:
    3.4% kernel error against 0.37% unflushed). A product of a kernel entry above it and an
    activation or gradient above it is a normal number; smaller entries (most of a 17x17 window
    around taps of spread 0.5) made the convolutions' multiply-adds produce subnormals, which
    x86 CPUs handle in microcode: the ConvNeXt-atto 32x32 stage's convolution ran ~30% slower
    (measured loaded, 1 thread, 39 vs 30 ms). The flushed entries of a window of n entries change
    an output by at most n * 1.1e-19 * max|x| (x the convolution's input), below float32
    resolution of any output above about n * 2e-12 * max|x|."""
    if torch.finfo(dtype).bits <= 16:
        dtype = torch.float32
    return float(torch.finfo(dtype).tiny) ** 0.5


def fused_applies(
    weight: Tensor, positions: Tensor, window: tuple[int, ...], sigma: Tensor | None = None
) -> bool:
    """Whether :class:`~convsuite.core_ops.layers.dcls_kernels.RenderDCLS` renders these taps: a 2-D window, float32/float64 CPU
    tensors of one dtype (``sigma`` too, when given), no autocast (the torch path's matrix
    product runs in bf16 there), not inside ``torch.compile`` (numba calls do not trace)."""
    return (
        len(window) == 2
        and all(
            t.device.type == "cpu" and t.dtype == weight.dtype
            for t in (weight, positions, *(() if sigma is None else (sigma,)))
        )
        and weight.dtype in (torch.float32, torch.float64)
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
    )


def _axis_positions(positions: Tensor, window: Sequence[int]) -> list[Tensor]:
    """Per spatial axis (tensor order), the tap positions in window coordinates, clamped to it.

    ``positions`` is ``P`` (D, C_out, C_in/groups, kernel_count), centred on the window; ``P[j]``
    moves along axis ``D - 1 - j``.
    """
    dims = len(window)
    out = []
    for axis, size in enumerate(window):
        half = size // 2
        out.append(positions[dims - 1 - axis].clamp(-half, half) + half)
    return out


def _bilinear_kernel(weight: Tensor, positions: Tensor, window: Sequence[int]) -> Tensor:
    """Scatter each tap's 2^D interpolation corners into the dense kernel (version 'v1')."""
    c_out, c_in, taps = weight.shape
    axis_pos = _axis_positions(positions, window)
    corner_index, corner_weight, corner_valid, axis_norm = [], [], [], []
    for pos, size in zip(axis_pos, window, strict=True):
        low = pos.detach().floor()
        frac = pos - low
        # At integer positions (e.g. clamped to the window edge) the interpolation has a kink; the
        # reference's autograd of relu(1 - |i - p|) picks the zero subgradient there, and so do we.
        frac = torch.where(frac.detach() == 0, frac.detach(), frac)
        low = low.long()
        index = torch.stack((low, low + 1))  # (2, O, I, K)
        valid = (index >= 0) & (index < size)
        weights = torch.stack((1 - frac, frac)) * valid
        corner_index.append(index.clamp(0, size - 1))
        corner_weight.append(weights)
        corner_valid.append(valid)
        axis_norm.append(weights.sum(0))
    coefficient = weight / (math.prod(axis_norm) + NORM_EPS)  # (O, I, K)

    # Combine the per-axis corners into 2^D flat indices and products of weights.
    flat_index = corner_index[0]
    value = corner_weight[0]
    for index, weights, size in zip(corner_index[1:], corner_weight[1:], window[1:], strict=True):
        flat_index = (flat_index.unsqueeze(1) * size + index.unsqueeze(0)).flatten(0, 1)
        value = (value.unsqueeze(1) * weights.unsqueeze(0)).flatten(0, 1)
    value = value * coefficient  # (2^D, O, I, K); invalid corners carry weight 0
    kernel = weight.new_zeros(c_out, c_in, math.prod(window))
    kernel = kernel.scatter_add(
        2,
        flat_index.permute(1, 2, 0, 3).reshape(c_out, c_in, -1),
        value.permute(1, 2, 0, 3).reshape(c_out, c_in, -1),
    )
    return kernel.reshape(c_out, c_in, *window)


def _gaussian_kernel(
    weight: Tensor, positions: Tensor, sigma: Tensor, window: Sequence[int]
) -> Tensor:
    """Sum over taps of separable Gaussian bumps, each normalized to unit mass (version 'gauss')."""
    c_out, c_in, taps = weight.shape
    dims = len(window)
    axis_pos = _axis_positions(positions, window)
    profiles, masses = [], []
    for axis, (pos, size) in enumerate(zip(axis_pos, window, strict=True)):
        spread = sigma[dims - 1 - axis].abs() + SIGMA_FLOOR
        grid = torch.arange(size, device=pos.device, dtype=pos.dtype)
        profile = torch.exp(-0.5 * ((grid - pos.unsqueeze(-1)) / spread.unsqueeze(-1)) ** 2)
        profiles.append(profile)  # (O, I, K, size)
        masses.append(profile.sum(-1))
    coefficient = weight / (math.prod(masses) + NORM_EPS)
    acc = profiles[0] * coefficient.unsqueeze(-1)
    if dims == 1:
        kernel = acc.sum(2)
    else:
        for profile in profiles[1:-1]:
            acc = (acc.unsqueeze(-1) * profile.unsqueeze(-2)).flatten(-2)
        kernel = torch.matmul(acc.transpose(-1, -2), profiles[-1])
    kernel = kernel.reshape(c_out, c_in, *window)
    # flushed entries are zero in value (kernel - kernel.detach()) but keep their gradient
    small = kernel.detach().abs() < flush_threshold(kernel.dtype)
    return torch.where(small, kernel - kernel.detach(), kernel)


def construct_kernel(
    weight: Tensor,
    positions: Tensor,
    window: Sequence[int],
    version: str = "gauss",
    sigma: Tensor | None = None,
    region: Sequence[tuple[int, int]] | None = None,
) -> Tensor:
    """Render DCLS taps into a dense kernel, or a region of it.

    Args:
        weight: (C_out, C_in/groups, K) tap weights.
        positions: (D, C_out, C_in/groups, K) tap positions relative to the window centre, in pixels;
            ``positions[j]`` moves along spatial axis ``D - 1 - j``.
        window: the dilated kernel size per spatial axis, tensor order.
        version: 'v1' (bilinear) or 'gauss' (Gaussian with learnable spread).
        sigma: (D, C_out, C_in/groups, K) spread parameters for 'gauss' (spread = |sigma| + 0.27).
        region: per spatial axis ``(start, stop)``: only ``kernel[..., start:stop, ...]`` is
            rendered (the taps a convolution on a small map reaches); None: the whole window.

    Returns:
        (C_out, C_in/groups, *window) dense kernel (or the region's part of it), differentiable
        in all inputs.
    """
    if version not in _VERSIONS:
        raise ValueError(f"version must be one of {_VERSIONS}, got {version!r}")
    if version == "gauss" and sigma is None:
        raise ValueError("version 'gauss' needs sigma")
    window = tuple(window)
    dims = len(window)
    if weight.dim() != 3:
        raise ValueError(f"weight must be (C_out, C_in/groups, K), got shape {tuple(weight.shape)}")
    expected = (dims, *weight.shape)
    for name, t in (("positions", positions), ("sigma", sigma if version == "gauss" else None)):
        if t is not None and tuple(t.shape) != expected:
            raise ValueError(f"{name} must have shape {expected}, got {tuple(t.shape)}")
    region = tuple(region) if region is not None else tuple((0, size) for size in window)
    if len(region) != dims or not all(
        0 <= start < stop <= size for (start, stop), size in zip(region, window, strict=True)
    ):
        raise ValueError(
            f"region must give 0 <= start < stop <= size on each of the {dims} axes of window "
            f"{window}, got {region}"
        )
    if FUSED_RENDERING and fused_applies(weight, positions, window, sigma):
        # Imported here: numba (the kernels' compiler) loads on first use, not with the layers.
        from convsuite.core_ops.layers.dcls_kernels import RenderDCLS

        return RenderDCLS.apply(weight, positions, sigma, window, version, region)
    kernel = _torch_kernel(weight, positions, window, version, sigma)
    return kernel[(..., *(slice(start, stop) for start, stop in region))]


def _torch_kernel(
    weight: Tensor,
    positions: Tensor,
    window: Sequence[int],
    version: str,
    sigma: Tensor | None = None,
) -> Tensor:
    """:func:`construct_kernel` in torch ops (any D, device and dtype; twice differentiable)."""
    if version == "v1":
        return _bilinear_kernel(weight, positions, window)
    assert sigma is not None  # checked by construct_kernel
    return _gaussian_kernel(weight, positions, sigma, window)


class _DCLSNd(nn.Module):
    """Shared implementation of :class:`DCLSConv1d`, :class:`DCLSConv2d`, :class:`DCLSConv3d`."""

    spatial_dims: int

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_count: int,
        stride: int | Sequence[int] = 1,
        padding: int | Sequence[int] = 0,
        dilated_kernel_size: int | Sequence[int] = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        version: str = "gauss",
    ) -> None:
        super().__init__()
        dims = self.spatial_dims
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible "
                f"by groups ({groups})"
            )
        if version not in _VERSIONS:
            raise ValueError(f"version must be one of {_VERSIONS}, got {version!r}")
        if padding_mode not in ("zeros", "reflect", "replicate", "circular"):
            raise ValueError(f"unknown padding_mode {padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_count = kernel_count
        self.stride = as_tuple(stride, dims, "stride")
        self.padding = as_tuple(padding, dims, "padding")
        self.dilated_kernel_size = as_tuple(dilated_kernel_size, dims, "dilated_kernel_size")
        self.groups = groups
        self.padding_mode = padding_mode
        self.version = version
        shape = (out_channels, in_channels // groups, kernel_count)
        self.weight = nn.Parameter(torch.empty(shape))
        self.P = nn.Parameter(torch.empty(dims, *shape))
        if version == "gauss":
            self.SIG = nn.Parameter(torch.empty(dims, *shape))
        else:
            self.register_parameter("SIG", None)
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The reference's initialization: Kaiming-uniform weights, positions ~ N(0, 0.5) clamped."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.weight.shape[2]
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)
        with torch.no_grad():
            nn.init.normal_(self.P, 0.0, 0.5)
            self.clamp_parameters()
            if self.SIG is not None:
                nn.init.constant_(self.SIG, _SIGMA_INIT)

    def clamp_parameters(self) -> None:
        """Clamp positions in place to the dilated window (call after optimizer steps if wanted)."""
        dims = self.spatial_dims
        with torch.no_grad():
            for j in range(dims):
                half = self.dilated_kernel_size[dims - 1 - j] // 2
                self.P[j].clamp_(-half, half)

    def dense_kernel(self) -> Tensor:
        """The rendered kernel, (C_out, C_in/groups, *dilated_kernel_size)."""
        return construct_kernel(
            self.weight, self.P, self.dilated_kernel_size, self.version, self.SIG
        )

    def forward(self, x: Tensor) -> Tensor:
        """(N, C_in, *L) -> (N, C_out, *L_out). At stride 1, only the taps that reach the input
        are rendered (the rest multiply zero padding only), with the padding reduced to match:
        same output and gradients as the whole kernel."""
        padding = self.padding
        if self.padding_mode != "zeros":
            pad = [p for p in reversed(self.padding) for _ in range(2)]
            x = F.pad(x, pad, mode=self.padding_mode)
            padding = (0,) * self.spatial_dims
        region = None
        if x.dim() == self.spatial_dims + 2 and all(s == 1 for s in self.stride):
            region = [
                reached_taps(length, pad, pad, size) or (0, size)
                for length, pad, size in zip(
                    x.shape[2:], padding, self.dilated_kernel_size, strict=True
                )
            ]
            padding = tuple(pad - start for pad, (start, _) in zip(padding, region, strict=True))
        kernel = construct_kernel(
            self.weight, self.P, self.dilated_kernel_size, self.version, self.SIG, region
        )
        return large_kernel_conv(x, kernel, self.bias, self.stride, padding, 1, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_count={self.kernel_count}, "
            f"dilated_kernel_size={self.dilated_kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, groups={self.groups}, version={self.version!r}, "
            f"bias={self.bias is not None}"
        )


class DCLSConv1d(_DCLSNd):
    """1-D DCLS convolution: (N, C_in, L) -> (N, C_out, L_out), as ``nn.Conv1d`` with a kernel of
    size ``dilated_kernel_size`` rendered from ``kernel_count`` learnable taps. See module docstring."""

    spatial_dims = 1


class DCLSConv2d(_DCLSNd):
    """2-D DCLS convolution: (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    Drop-in for the reference ``Dcls2d(in_channels, out_channels, kernel_count, stride, padding,
    dilated_kernel_size, groups, bias, padding_mode, version)``. DCLS-ConvNeXt (ICLR 2023, Table 1)
    replaces ConvNeXt's 7x7 depthwise convolution by ``kernel_count=34, dilated_kernel_size=17``
    (depthwise: ``groups = in_channels = out_channels``, ``padding = 8``).
    """

    spatial_dims = 2


class DCLSConv3d(_DCLSNd):
    """3-D DCLS convolution: (N, C_in, D, H, W) -> (N, C_out, D_out, H_out, W_out)."""

    spatial_dims = 3
