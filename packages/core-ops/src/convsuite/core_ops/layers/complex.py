"""Complex-valued layers, on complex tensors and in the pseudo-complex (channel-pair) form.

Trabelsi et al., "Deep Complex Networks", ICLR 2018: complex convolution (Sec. 3.2, Eq. 1),
complex batch normalization by 2x2 whitening (Sec. 3.5, Eqs. 11-13), complex weight init
(Sec. 3.6), CReLU (Sec. 3.4); Arjovsky, Shah & Bengio, "Unitary Evolution Recurrent Neural
Networks", ICML 2016 (modReLU, Eq. 8).

Two layouts carry the same numbers:

* complex: a ``complex64`` (or ``complex128``) tensor (N, C, *spatial);
* pseudo-complex: a real tensor (N, 2C, *spatial) with the real parts in channels ``[0, C)`` and
  the imaginary parts in ``[C, 2C)`` (the form of complex D3Net-style audio models, which keep
  real and imaginary spectrogram parts as channel pairs). ``complex_to_channels`` and
  ``channels_to_complex`` convert between them.

Complex convolution ``(Wr + i Wi) * (xr + i xi) = (Wr*xr - Wi*xi) + i (Wi*xr + Wr*xi)`` is computed
in both layers by one real convolution of the pseudo-complex input with the block weight
``[[Wr, -Wi], [Wi, Wr]]``: the four real products of the textbook form fused into one call (the
same FLOPs as four real convolutions; Gauss's three-multiplication trick saves a quarter of the
FLOPs but needs three calls and extra additions, slower at these sizes on CPU). Being a real
convolution, it runs under ``torch.autocast`` in bfloat16.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsuite.core_ops.layers.arguments import IntOrSeq
from convsuite.core_ops.layers.factories import conv_function

__all__ = [
    "CReLU",
    "ComplexBatchNorm2d",
    "ComplexConv2d",
    "ModReLU",
    "PseudoComplexConv2d",
    "channels_to_complex",
    "complex_block_conv",
    "complex_block_weight",
    "complex_to_channels",
]


def _require_complex(z: Tensor, name: str) -> None:
    if not z.is_complex():
        raise ValueError(f"{name} expects a complex tensor, got {z.dtype}")


def complex_to_channels(z: Tensor) -> Tensor:
    """Complex (N, C, ...) -> real (N, 2C, ...) laid out as [real channels..., imag channels...].

    complex64 gives float32 and complex128 gives float64.
    """
    _require_complex(z, "complex_to_channels")
    if z.dim() < 2:
        raise ValueError(f"complex_to_channels needs (N, C, ...), got {tuple(z.shape)}")
    n, channels, *spatial = z.shape
    # One strided copy (and one in backward), cheaper than cat of .real and .imag.
    return torch.view_as_real(z.resolve_conj()).movedim(-1, 1).reshape(n, 2 * channels, *spatial)


def channels_to_complex(x: Tensor) -> Tensor:
    """Real (N, 2C, ...) laid out as [real channels..., imag channels...] -> complex (N, C, ...).

    The inverse of :func:`complex_to_channels`. float64 gives complex128; every other floating
    dtype (float32, and float16/bfloat16 from autocast, which have no complex counterpart in
    common use) gives complex64.
    """
    if x.is_complex() or not x.is_floating_point():
        raise ValueError(f"channels_to_complex expects a real floating tensor, got {x.dtype}")
    if x.dim() < 2 or x.shape[1] % 2:
        raise ValueError(f"channels_to_complex needs an even channel axis 1, got {tuple(x.shape)}")
    if x.dtype != torch.float64:
        x = x.float()
    n, channels, *spatial = x.shape
    pairs = x.reshape(n, 2, channels // 2, *spatial).movedim(1, -1).contiguous()
    return torch.view_as_complex(pairs)


def _group_major(x: Tensor, groups: int) -> Tensor:
    """(N, 2C, ...) [real groups..., imag groups...] -> [group 0 (real, imag), group 1, ...]."""
    n, channels, *spatial = x.shape
    return (
        x.reshape(n, 2, groups, channels // (2 * groups), *spatial)
        .transpose(1, 2)
        .reshape(n, channels, *spatial)
    )


def _part_major(x: Tensor, groups: int) -> Tensor:
    """Inverse of :func:`_group_major`."""
    n, channels, *spatial = x.shape
    return (
        x.reshape(n, groups, 2, channels // (2 * groups), *spatial)
        .transpose(1, 2)
        .reshape(n, channels, *spatial)
    )


def complex_block_conv(
    x: Tensor,
    weight_real: Tensor,
    weight_imag: Tensor,
    bias_real: Tensor | None = None,
    bias_imag: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Tensor:
    """Complex convolution of a pseudo-complex input: one real conv with ``[[Wr, -Wi], [Wi, Wr]]``.

    Args:
        x: (N, 2 C_in, *spatial) real, [real channels..., imag channels...]; 1-3 spatial axes.
        weight_real, weight_imag: (C_out, C_in / groups, *kernel) real and imaginary weights.
        bias_real, bias_imag: (C_out,) or both None.
        stride, padding, dilation, groups: as in ``torch.nn.functional.conv2d`` for the complex
            convolution (groups split the complex channels).

    Returns:
        (N, 2 C_out, *out_spatial) real, same layout.
    """
    c_out, c_in_group, *kernel = weight_real.shape
    if weight_imag.shape != weight_real.shape:
        raise ValueError(
            f"weight_real {tuple(weight_real.shape)} and weight_imag {tuple(weight_imag.shape)} differ"
        )
    if x.dim() != len(kernel) + 2 or x.shape[1] != 2 * c_in_group * groups:
        raise ValueError(
            f"input must be (N, {2 * c_in_group * groups}, *spatial) with {len(kernel)} spatial "
            f"axes (real then imaginary channels), got {tuple(x.shape)}"
        )
    if (bias_real is None) != (bias_imag is None):
        raise ValueError("bias_real and bias_imag must both be given or both be None")
    weight, bias = complex_block_weight(weight_real, weight_imag, bias_real, bias_imag, groups)
    return _block_conv(x, weight, bias, stride, padding, dilation, groups)


def _block_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: IntOrSeq,
    padding: IntOrSeq | str,
    dilation: IntOrSeq,
    groups: int,
) -> Tensor:
    """The real convolution of pseudo-complex ``x`` (part-major) with an assembled block
    ``weight`` (:func:`complex_block_weight`), output part-major. Groups are reordered around
    the convolution; one group needs no reordering (it is the identity, and would copy a
    channels-last input)."""
    conv = conv_function(weight.dim() - 2)
    if groups == 1:
        return conv(x, weight, bias, stride, padding, dilation, 1)
    y = conv(_group_major(x, groups), weight, bias, stride, padding, dilation, groups)
    return _part_major(y, groups)


def complex_block_weight(
    weight_real: Tensor,
    weight_imag: Tensor,
    bias_real: Tensor | None = None,
    bias_imag: Tensor | None = None,
    groups: int = 1,
) -> tuple[Tensor, Tensor | None]:
    """The real weight and bias of :func:`complex_block_conv`: per group g the weight block
    ``[[Wr_g, -Wi_g], [Wi_g, Wr_g]]``, (2 C_out, 2 C_in / groups, *kernel), and the bias
    ``[br_g; bi_g]`` per group, (2 C_out,) or None (group-major channel order)."""
    c_out, c_in_group, *kernel = weight_real.shape
    w_r = weight_real.reshape(groups, c_out // groups, c_in_group, *kernel)
    w_i = weight_imag.reshape(groups, c_out // groups, c_in_group, *kernel)
    top = torch.cat([w_r, -w_i], dim=2)
    bottom = torch.cat([w_i, w_r], dim=2)
    weight = torch.stack([top, bottom], dim=1).reshape(2 * c_out, 2 * c_in_group, *kernel)
    if bias_real is None or bias_imag is None:
        return weight, None
    bias = torch.stack([bias_real.reshape(groups, -1), bias_imag.reshape(groups, -1)], dim=1)
    return weight, bias.reshape(2 * c_out)


class _ComplexConvBase2d(nn.Module):
    """Parameters and init shared by the complex and pseudo-complex 2-D convolutions."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrSeq,
        stride: IntOrSeq = 1,
        padding: IntOrSeq | str = 0,
        dilation: IntOrSeq = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"in ({in_channels}) and out ({out_channels}) channels must be divisible by "
                f"groups ({groups})"
            )
        kernel = (kernel_size,) * 2 if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        shape = (out_channels, in_channels // groups, *kernel)
        self.weight_real = nn.Parameter(torch.empty(shape))
        self.weight_imag = nn.Parameter(torch.empty(shape))
        if bias:
            self.bias_real = nn.Parameter(torch.empty(out_channels))
            self.bias_imag = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias_real", None)
            self.register_parameter("bias_imag", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Complex Glorot init (Trabelsi et al., Sec. 3.6): Rayleigh modulus, uniform phase.

        A complex normal weight with independent N(0, s^2) parts has exactly a Rayleigh(s)
        modulus and a uniform phase; s = 1/sqrt(fan_in + fan_out) gives Var(W) = 2 s^2 =
        2 / (fan_in + fan_out). Biases start at zero.
        """
        receptive = math.prod(self.kernel_size)
        fan_in = self.in_channels // self.groups * receptive
        fan_out = self.out_channels * receptive
        std = 1.0 / math.sqrt(fan_in + fan_out)
        with torch.no_grad():
            self.weight_real.normal_(0.0, std)
            self.weight_imag.normal_(0.0, std)
            if self.bias_real is not None:
                self.bias_real.zero_()
                self.bias_imag.zero_()

    def _conv_channels(self, x: Tensor) -> Tensor:
        return complex_block_conv(
            x,
            self.weight_real,
            self.weight_imag,
            self.bias_real,
            self.bias_imag,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"groups={self.groups}, bias={self.bias_real is not None}"
        )


class ComplexConv2d(_ComplexConvBase2d):
    """Complex 2-D convolution on complex tensors (Trabelsi et al., ICLR 2018, Sec. 3.2, Eq. 1).

    ``y = W * x + b`` with complex ``W = Wr + i Wi`` (parameters ``weight_real``, ``weight_imag``,
    (out, in / groups, kh, kw)) and ``b = bias_real + i bias_imag``. Computed as one real
    convolution with the block weight ``[[Wr, -Wi], [Wi, Wr]]`` (see :func:`complex_block_conv`).
    Input (N, in, H, W) complex64 -> output (N, out, H_out, W_out) complex64 (complex128 in,
    complex128 out with float64 parameters). Under bf16 autocast the convolution runs in bf16 and
    the output is complex64.

    Args:
        in_channels, out_channels: complex channel counts.
        kernel_size, stride, padding, dilation, groups, bias: as in ``torch.nn.Conv2d``.
    """

    def forward(self, z: Tensor) -> Tensor:
        """(N, in, H, W) complex -> (N, out, H_out, W_out) complex."""
        _require_complex(z, type(self).__name__)
        return channels_to_complex(self._conv_channels(complex_to_channels(z)))


class PseudoComplexConv2d(_ComplexConvBase2d):
    """Complex 2-D convolution on real channel pairs (Trabelsi et al., ICLR 2018, Sec. 3.2).

    The same layer as :class:`ComplexConv2d` (same parameters, same state-dict keys), for models
    that keep real and imaginary parts as channels: input (N, 2 in, H, W) real laid out as
    [real channels..., imag channels...] -> output (N, 2 out, H_out, W_out) in the same layout,
    equal to ``complex_to_channels(ComplexConv2d(channels_to_complex(x)))``. Any real dtype,
    bf16 autocast included.

    Args:
        in_channels, out_channels: complex channel counts (the tensors carry twice as many).
        kernel_size, stride, padding, dilation, groups, bias: as in ``torch.nn.Conv2d``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The block weight and bias cached by cache_inference_weight (not in the state dict).
        self.register_buffer("inference_weight", None, persistent=False)
        self.register_buffer("inference_bias", None, persistent=False)

    def cache_inference_weight(self, dtype: torch.dtype = torch.bfloat16) -> None:
        """Build the block weight ``[[Wr, -Wi], [Wi, Wr]]`` and bias once, in ``dtype``
        (channels-last), for inference: from then on an input of that dtype is convolved with it
        directly (one oneDNN call, no weight assembly per call), any other input as before.

        Used by :func:`convsuite.core_ops.precision.prepare_for_inference` for bf16; the
        parameters stay float32 (training, the state dict and code that reads ``weight_real``
        see them unchanged). The cache is a snapshot: call again after changing the weights.
        """
        with torch.no_grad():
            weight, bias = complex_block_weight(
                self.weight_real, self.weight_imag, self.bias_real, self.bias_imag, self.groups
            )
        self.inference_weight = weight.to(dtype).contiguous(memory_format=torch.channels_last)
        self.inference_bias = None if bias is None else bias.to(dtype)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 2 in, H, W) real -> (N, 2 out, H_out, W_out) real."""
        weight = self.inference_weight
        # (a cache that a module-wide .float()/.double() brought to the parameters' dtype is
        # not used: inputs of that dtype take the parameters' path)
        if weight is None or x.dtype != weight.dtype or weight.dtype == self.weight_real.dtype:
            return self._conv_channels(x)
        if x.dim() != 4 or x.shape[1] != weight.shape[1] * self.groups:
            raise ValueError(
                f"input must be (N, {weight.shape[1] * self.groups}, H, W) (real then imaginary "
                f"channels), got {tuple(x.shape)}"
            )
        return _block_conv(
            x, weight, self.inference_bias, self.stride, self.padding, self.dilation, self.groups
        )


class ComplexBatchNorm2d(nn.Module):
    """Complex batch normalization by 2x2 whitening (Trabelsi et al., ICLR 2018, Sec. 3.5).

    Per channel, ``x~ = V^{-1/2} (z - E[z])`` with ``V`` the 2x2 covariance of (real, imag) plus
    ``eps I`` (Eq. 11; closed-form inverse square root of a 2x2 SPD matrix), then
    ``y = Gamma x~ + beta`` (Eq. 13) with the symmetric ``Gamma = [[g_rr, g_ri], [g_ri, g_ii]]``
    (``weight`` rows rr, ri, ii, init 1/sqrt(2), 0, 1/sqrt(2) as in the paper, so that the
    modulus of the output has unit variance) and complex ``beta`` (``bias`` rows real, imag,
    init 0). Training uses batch statistics and updates ``running_mean`` (2, C) and
    ``running_covar`` (3, C: Vrr, Vri, Vii, unbiased, init identity as ``nn.BatchNorm2d``'s
    variance) with ``momentum`` (None: cumulative average); eval uses the running statistics.
    Input and output (N, C, H, W) complex64 (complex128 with float64 parameters).

    Args:
        num_features: C, complex channels.
        eps: added to Vrr and Vii.
        momentum: running-statistics update factor, or None for a cumulative average.
        affine: learn Gamma and beta.
        track_running_stats: keep running statistics (else always use batch statistics).
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.empty(3, num_features))
            self.bias = nn.Parameter(torch.empty(2, num_features))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(2, num_features))
            self.register_buffer("running_covar", torch.zeros(3, num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_covar", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Zero mean, identity covariance, no batches seen."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_covar.copy_(
                torch.tensor([1.0, 0.0, 1.0]).reshape(3, 1).expand_as(self.running_covar)
            )
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        """Running statistics reset; Gamma = I / sqrt(2), beta = 0 (Trabelsi et al., Sec. 3.5)."""
        self.reset_running_stats()
        if self.affine:
            with torch.no_grad():
                self.weight.copy_(
                    torch.tensor([1 / math.sqrt(2), 0.0, 1 / math.sqrt(2)])
                    .reshape(3, 1)
                    .expand_as(self.weight)
                )
                self.bias.zero_()

    def forward(self, z: Tensor) -> Tensor:
        """(N, C, H, W) complex -> (N, C, H, W) complex."""
        _require_complex(z, type(self).__name__)
        if z.dim() != 4 or z.shape[1] != self.num_features:
            raise ValueError(
                f"ComplexBatchNorm2d expects (N, {self.num_features}, H, W), got {tuple(z.shape)}"
            )
        real, imag = z.real, z.imag
        axes = (0, 2, 3)
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            count = real.numel() // self.num_features
            if count < 2:
                raise ValueError(
                    "ComplexBatchNorm2d needs more than one value per channel to train"
                )
            mean_r, mean_i = real.mean(axes), imag.mean(axes)
            cr = real - mean_r.reshape(1, -1, 1, 1)
            ci = imag - mean_i.reshape(1, -1, 1, 1)
            v_rr, v_ri, v_ii = (cr * cr).mean(axes), (cr * ci).mean(axes), (ci * ci).mean(axes)
            if self.training and self.track_running_stats:
                self._update_running(mean_r, mean_i, v_rr, v_ri, v_ii, count)
        else:
            mean_r, mean_i = self.running_mean
            v_rr, v_ri, v_ii = self.running_covar
            cr = real - mean_r.reshape(1, -1, 1, 1)
            ci = imag - mean_i.reshape(1, -1, 1, 1)
        v_rr = v_rr + self.eps
        v_ii = v_ii + self.eps
        # Inverse square root of [[a, b], [b, c]]: [[c + s, -b], [-b, a + s]] / (s t),
        # s = sqrt(ac - b^2), t = sqrt(a + c + 2 s).
        s = (v_rr * v_ii - v_ri * v_ri).sqrt()
        t = (v_rr + v_ii + 2 * s).sqrt()
        inv = 1.0 / (s * t)
        w_rr, w_ri, w_ii = (v_ii + s) * inv, -v_ri * inv, (v_rr + s) * inv
        if self.affine:
            g_rr, g_ri, g_ii = self.weight
            # Fold whitening and Gamma into one 2x2 matrix per channel: M = Gamma W.
            m_rr, m_ri = g_rr * w_rr + g_ri * w_ri, g_rr * w_ri + g_ri * w_ii
            m_ir, m_ii = g_ri * w_rr + g_ii * w_ri, g_ri * w_ri + g_ii * w_ii
        else:
            m_rr, m_ri, m_ir, m_ii = w_rr, w_ri, w_ri, w_ii

        def per_channel(v: Tensor) -> Tensor:
            return v.reshape(1, -1, 1, 1)

        out_r = per_channel(m_rr) * cr + per_channel(m_ri) * ci
        out_i = per_channel(m_ir) * cr + per_channel(m_ii) * ci
        if self.affine:
            out_r = out_r + per_channel(self.bias[0])
            out_i = out_i + per_channel(self.bias[1])
        return torch.complex(out_r, out_i)

    def _update_running(
        self, mean_r: Tensor, mean_i: Tensor, v_rr: Tensor, v_ri: Tensor, v_ii: Tensor, count: int
    ) -> None:
        self.num_batches_tracked.add_(1)
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        unbiased = count / (count - 1)
        with torch.no_grad():
            self.running_mean.lerp_(torch.stack([mean_r, mean_i]).to(self.running_mean), factor)
            covar = torch.stack([v_rr, v_ri, v_ii]) * unbiased
            self.running_covar.lerp_(covar.to(self.running_covar), factor)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class ModReLU(nn.Module):
    """modReLU (Arjovsky, Shah & Bengio, ICML 2016, Eq. 8): ``relu(|z| + b) z / |z|``.

    Keeps the phase and shifts the modulus by a learnable per-channel bias ``b`` (C,), init
    U(-0.01, 0.01) as in the paper's code. At ``z = 0`` the output is 0 with finite gradients.
    Input and output (N, C, ...) complex.

    Args:
        num_features: C, complex channels.
    """

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features
        self.bias = nn.Parameter(torch.empty(num_features))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """b ~ U(-0.01, 0.01)."""
        with torch.no_grad():
            self.bias.uniform_(-0.01, 0.01)

    def forward(self, z: Tensor) -> Tensor:
        """(N, C, ...) complex -> (N, C, ...) complex."""
        _require_complex(z, type(self).__name__)
        if z.dim() < 2 or z.shape[1] != self.num_features:
            raise ValueError(f"ModReLU expects (N, {self.num_features}, ...), got {tuple(z.shape)}")
        magnitude = z.abs()
        bias = self.bias.reshape(1, -1, *[1] * (z.dim() - 2))
        nonzero = magnitude > 0
        # Divide by 1 where |z| = 0 so that neither value nor gradient sees 0/0.
        scale = F.relu(magnitude + bias) / torch.where(nonzero, magnitude, 1.0)
        return z * torch.where(nonzero, scale, 0.0)

    def extra_repr(self) -> str:
        return f"{self.num_features}"


class CReLU(nn.Module):
    """Complex ReLU (Trabelsi et al., ICLR 2018, Sec. 3.4): ReLU on real and imaginary parts.

    Input and output (N, C, ...) complex.
    """

    def forward(self, z: Tensor) -> Tensor:
        """relu(Re z) + i relu(Im z)."""
        _require_complex(z, type(self).__name__)
        return torch.complex(F.relu(z.real), F.relu(z.imag))
