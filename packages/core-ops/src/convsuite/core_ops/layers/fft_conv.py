"""FFT convolution for large and long kernels, and the dispatcher that picks FFT or direct.

Convolution theorem: a cross-correlation is a pointwise product in the Fourier domain,
``y = irfft(rfft(x) * conj(rfft(w)))``, costing O(n log n) per channel whatever the kernel size,
where the direct method costs O(n k^D). On a CPU the backward pass of torch's direct depthwise
convolution is especially slow (about 1-2 GFLOP/s at k = 17), while the FFT path's backward is two
more FFTs and pointwise products, so large kernels train an order of magnitude faster (see
``packages/core-ops/benchmarks/bench_fft_conv.py``).

Exactness: the circular convolution equals the linear one because the FFT size ``n`` per axis is at
least ``L + max(pad_left, pad_right)`` and at least the dilated kernel extent; the kernel is placed
circularly shifted by ``-pad_left`` so that no output shift or input padding copy is needed. FFT
sizes are rounded up to 5-smooth lengths (2^a 3^b 5^c), which pocketfft/MKL transform fastest.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsuite.core_ops.layers.arguments import IntOrSeq, as_tuple
from convsuite.core_ops.layers.factories import conv_function
from convsuite.core_ops.runtime import keep_freed_memory_on_first_use

__all__ = [
    "FFT_CROSSOVER",
    "FFTConv1d",
    "FFTConv2d",
    "fft_conv",
    "large_kernel_conv",
    "next_fast_len",
]


@lru_cache(maxsize=512)
def next_fast_len(n: int) -> int:
    """Smallest 5-smooth integer (2^a 3^b 5^c) that is >= ``n``."""
    best = 1 << max(0, (n - 1).bit_length())
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            # Smallest power of two that lifts power35 to at least n.
            quotient = -(-n // power35)
            candidate = power35 * (1 << max(0, (quotient - 1).bit_length()))
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def _side_padding(
    padding: IntOrSeq | str, kernel: Sequence[int], dilation: Sequence[int]
) -> list[tuple[int, int]]:
    """(left, right) zero padding per spatial axis, with torch's rule for 'same' (extra on the right)."""
    dims = len(kernel)
    if padding == "valid":
        return [(0, 0)] * dims
    if padding == "same":
        sides = []
        for k, d in zip(kernel, dilation, strict=True):
            total = d * (k - 1)
            sides.append((total // 2, total - total // 2))
        return sides
    if isinstance(padding, str):
        raise ValueError(f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}")
    return [(p, p) for p in as_tuple(padding, dims, "padding")]


def fft_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Tensor:
    """Cross-correlation with the semantics of ``torch.nn.functional.conv{1,2,3}d``, computed by FFT.

    Args:
        x: (N, C_in, *spatial) float input, D = 1, 2 or 3 spatial axes.
        weight: (C_out, C_in / groups, *kernel).
        bias: (C_out,) or None.
        stride, padding, dilation, groups: as in ``torch.nn.functional.conv2d`` (zero padding;
            'same' and 'valid' accepted).

    Returns:
        (N, C_out, *out_spatial), same dtype as ``x``. Transforms run in float32 (float64 inputs stay
        float64): bf16 has no CPU FFT, so under autocast this path computes in float32.
    """
    keep_freed_memory_on_first_use()
    dims = weight.dim() - 2
    if x.dim() != dims + 2:
        raise ValueError(
            f"input must be (N, C, *spatial) with {dims} spatial axes, got {tuple(x.shape)}"
        )
    kernel = tuple(weight.shape[2:])
    stride_ = as_tuple(stride, dims, "stride")
    dilation_ = as_tuple(dilation, dims, "dilation")
    sides = _side_padding(padding, kernel, dilation_)
    c_in = x.shape[1]
    if c_in != weight.shape[1] * groups:
        raise ValueError(
            f"input has {c_in} channels but weight expects {weight.shape[1] * groups} (groups={groups})"
        )
    spatial = tuple(x.shape[2:])
    extent = [d * (k - 1) + 1 for k, d in zip(kernel, dilation_, strict=True)]
    out_len = [
        length + left + right - ext + 1
        for length, (left, right), ext in zip(spatial, sides, extent, strict=True)
    ]
    if min(out_len) < 1:
        raise ValueError(
            f"kernel extent {extent} exceeds padded input {spatial} with padding {sides}"
        )
    fft_size = [
        next_fast_len(max(length + max(left, right), out, ext))
        for length, (left, right), out, ext in zip(spatial, sides, out_len, extent, strict=True)
    ]

    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    x_c = x.to(compute_dtype)
    w_c = weight.to(compute_dtype)
    axes = tuple(range(-dims, 0))

    # Dilate the kernel (zero insertion), zero-pad it to the FFT size and shift it by -pad_left so the
    # circular correlation lands directly on the padded output's index 0.
    if any(d > 1 for d in dilation_):
        dilated = w_c.new_zeros(*w_c.shape[:2], *extent)
        dilated[(..., *(slice(None, None, d) for d in dilation_))] = w_c
        w_c = dilated
    pad_spec: list[int] = []
    for ext, size in zip(reversed(extent), reversed(fft_size), strict=True):
        pad_spec += [0, size - ext]
    w_full = torch.roll(F.pad(w_c, pad_spec), shifts=[-left for left, _ in sides], dims=axes)

    y = _FourierCorrelation.apply(x_c, w_full, groups, tuple(fft_size), tuple(out_len), stride_)
    if bias is not None:
        y = y + bias.to(y.dtype).reshape(1, -1, *([1] * dims))
    return y.to(x.dtype) if x.dtype != y.dtype and x.dtype != torch.float64 else y


def _grouped(spectrum: Tensor, groups: int) -> Tensor:
    """(B, C, *freq) -> (B, groups, C / groups, F) with the frequencies flattened."""
    return spectrum.reshape(spectrum.shape[0], groups, spectrum.shape[1] // groups, -1)


def _correlate_spectra(x_f: Tensor, w_f: Tensor, groups: int) -> Tensor:
    """Y[n, g, o] = sum_i X[n, g, i] conj(W[g, o, i]): the forward correlation, per frequency."""
    x_g = _grouped(x_f, groups)
    w_g = w_f.reshape(groups, w_f.shape[0] // groups, w_f.shape[1], -1)
    if w_g.shape[2] == 1:  # depthwise: a broadcast product, no reduction
        y = x_g * w_g.squeeze(2).conj()
    else:
        y = torch.einsum("ngif,goif->ngof", x_g, w_g.conj())
    return y.reshape(x_f.shape[0], -1, *x_f.shape[2:])


def _input_gradient_spectra(g_f: Tensor, w_f: Tensor, groups: int) -> Tensor:
    """GX[n, g, i] = sum_o G[n, g, o] W[g, o, i]: the input gradient, per frequency."""
    g_g = _grouped(g_f, groups)
    w_g = w_f.reshape(groups, g_g.shape[2], w_f.shape[1], -1)
    if w_g.shape[2] == 1:
        gx = (g_g * w_g.squeeze(2)).sum(2, keepdim=True)
    else:
        gx = torch.einsum("ngof,goif->ngif", g_g, w_g)
    return gx.reshape(g_f.shape[0], -1, *g_f.shape[2:])


def _weight_gradient_spectra(x_f: Tensor, g_f: Tensor, groups: int) -> Tensor:
    """GW[g, o, i] = sum_n X[n, g, i] conj(G[n, g, o]): the weight gradient, per frequency."""
    x_g, g_g = _grouped(x_f, groups), _grouped(g_f, groups)
    if x_g.shape[2] == 1:
        gw = (x_g * g_g.conj()).sum(0).unsqueeze(2)
    else:
        gw = torch.einsum("ngif,ngof->goif", x_g, g_g.conj())
    return gw.reshape(g_f.shape[1], x_g.shape[2], *x_f.shape[2:])


class _FourierCorrelation(torch.autograd.Function):
    """Circular cross-correlation of x (zero-extended to ``fft_size``) with a full-size kernel.

    Forward: ``y = irfft(X conj(W))`` cropped to ``out_len`` and strided. Backward, from the
    correlation identities: ``grad_x = irfft(G W)``, ``grad_w = irfft(sum_n X conj(G))``. Written out
    because autograd's backward of ``rfftn`` runs a full complex FFT and several fills (about 4x slower).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        w_full: Tensor,
        groups: int,
        fft_size: tuple[int, ...],
        out_len: tuple[int, ...],
        stride: tuple[int, ...],
    ) -> Tensor:
        axes = tuple(range(-len(fft_size), 0))
        x_f = torch.fft.rfftn(x, s=fft_size, dim=axes)
        w_f = torch.fft.rfftn(w_full, dim=axes)
        y = torch.fft.irfftn(_correlate_spectra(x_f, w_f, groups), s=fft_size, dim=axes)
        ctx.save_for_backward(x_f, w_f)
        ctx.meta = (groups, fft_size, out_len, stride, tuple(x.shape[2:]))
        return y[(..., *(slice(0, out, st) for out, st in zip(out_len, stride, strict=True)))]

    @staticmethod
    def backward(ctx, grad_y: Tensor):  # type: ignore[override]
        x_f, w_f = ctx.saved_tensors
        groups, fft_size, out_len, stride, in_len = ctx.meta
        axes = tuple(range(-len(fft_size), 0))
        if all(st == 1 for st in stride):
            g_f = torch.fft.rfftn(grad_y, s=fft_size, dim=axes)
        else:
            g_full = grad_y.new_zeros(*grad_y.shape[:2], *fft_size)
            g_full[(..., *(slice(0, out, st) for out, st in zip(out_len, stride, strict=True)))] = (
                grad_y
            )
            g_f = torch.fft.rfftn(g_full, dim=axes)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.fft.irfftn(
                _input_gradient_spectra(g_f, w_f, groups), s=fft_size, dim=axes
            )
            grad_x = grad_x[(..., *(slice(0, length) for length in in_len))]
        if ctx.needs_input_grad[1]:
            grad_w = torch.fft.irfftn(
                _weight_gradient_spectra(x_f, g_f, groups), s=fft_size, dim=axes
            )
        return grad_x, grad_w, None, None, None, None


# Measured crossovers on this project's 2-core AVX-512 CPU (torch 2.13, float32, 2 threads; 2-D input
# (8, C, 56, 56) with C = 96 depthwise or C = 32 dense; 1-D input (8, 96, 4096), whose direct path
# runs as a channels_last 2-D convolution (see _direct_conv); see the crossover table
# printed by benchmarks/bench_fft_conv.py): the dilated kernel extent from which FFT beats torch's
# direct convolution in its fastest layout. Training differs from inference because torch's direct
# depthwise backward is far slower than its forward (it falls off a cliff at k >= 15 in 2-D).
# 3-D was not measured and uses the 2-D values.
FFT_CROSSOVER = {
    # (spatial dims, depthwise, needs_grad) -> smallest kernel extent routed to FFT
    (1, True, True): 13,
    (1, True, False): 127,
    (1, False, True): 15,
    (1, False, False): 15,
    (2, True, True): 11,
    (2, True, False): 51,  # issue 18: at k = 31 direct (channels-last) 186 ms, FFT 440 ms
    (2, False, True): 15,
    (2, False, False): 15,
    (3, True, True): 11,
    (3, True, False): 51,
    (3, False, True): 15,
    (3, False, False): 15,
}


def _direct_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: IntOrSeq,
    padding: IntOrSeq | str,
    dilation: IntOrSeq,
    groups: int,
) -> Tensor:
    """torch's direct convolution in its fastest CPU layout.

    Grouped 2-D convolutions run channels_last (torch's NCHW depthwise kernel is ~28x slower at
    k >= 15); grouped 1-D convolutions run as (N, C, 1, L) channels_last 2-D convolutions, whose
    forward is 2-20x faster than ``conv1d`` for k = 13-63 on this CPU.
    """
    dims = weight.dim() - 2
    if groups > 1 and dims == 1:
        pad = padding if isinstance(padding, str) else (0, *as_tuple(padding, 1, "padding"))
        y = F.conv2d(
            x.unsqueeze(2).contiguous(memory_format=torch.channels_last),
            weight.unsqueeze(2),
            bias,
            (1, *as_tuple(stride, 1, "stride")),
            pad,
            (1, *as_tuple(dilation, 1, "dilation")),
            groups,
        )
        return y.squeeze(2)
    if groups > 1 and dims == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    conv = conv_function(dims)
    return conv(x, weight, bias, stride, padding, dilation, groups)


def large_kernel_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Tensor:
    """Convolution that routes to :func:`fft_conv` or to torch's direct kernel, whichever is faster.

    The choice uses :data:`FFT_CROSSOVER`, keyed by whether the convolution is depthwise and whether
    autograd will need a backward pass; arguments as :func:`torch.nn.functional.conv2d`.
    """
    keep_freed_memory_on_first_use()
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    depthwise = weight.shape[1] == 1 and groups > 1
    dilation_ = as_tuple(dilation, weight.dim() - 2, "dilation")
    extent = max(d * (k - 1) + 1 for k, d in zip(weight.shape[2:], dilation_, strict=True))
    if extent >= FFT_CROSSOVER[(weight.dim() - 2, depthwise, needs_grad)]:
        return fft_conv(x, weight, bias, stride, padding, dilation, groups)
    return _direct_conv(x, weight, bias, stride, padding, dilation, groups)


class _FFTConvMixin:
    """Shared forward for the drop-in FFT convolution modules (``nn.ConvNd`` subclasses)."""

    padding_mode: str
    padding: tuple[int, ...] | str
    _reversed_padding_repeated_twice: list[int]

    def _conv_forward(self, input: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        nn_conv = self  # typing: the concrete class is an nn.ConvNd
        padding = nn_conv.padding
        if nn_conv.padding_mode != "zeros":
            input = F.pad(input, self._reversed_padding_repeated_twice, mode=nn_conv.padding_mode)
            padding = 0
        return fft_conv(
            input,
            weight,
            bias,
            nn_conv.stride,
            padding,
            nn_conv.dilation,
            nn_conv.groups,  # type: ignore[attr-defined]
        )


class FFTConv1d(_FFTConvMixin, nn.Conv1d):
    """Drop-in ``nn.Conv1d`` computed by FFT: same constructor, weight ``(C_out, C_in/groups, k)``.

    For long kernels (audio filters, sequence mixers): cost per output is independent of ``k``.
    Input (N, C_in, L) -> output (N, C_out, L_out) exactly as ``nn.Conv1d``; padding modes 'zeros',
    'circular', 'reflect', 'replicate'.
    """


class FFTConv2d(_FFTConvMixin, nn.Conv2d):
    """Drop-in ``nn.Conv2d`` computed by FFT: same constructor, weight ``(C_out, C_in/groups, kH, kW)``.

    Large depthwise kernels (RepLKNet/UniRepLKNet/SLaK style, k = 13-51) train about an order of
    magnitude faster on CPU than with torch's direct kernel. Input (N, C_in, H, W) -> output
    (N, C_out, H_out, W_out) exactly as ``nn.Conv2d``.
    """
