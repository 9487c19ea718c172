"""FFT convolution for large and long kernels, and the dispatcher that routes each convolution
to one of five routes (:data:`ROUTES`): torch's direct kernel as laid out ("direct") or in
channels-last ("channels_last"), the numba depthwise kernels ("kernel", training), a split
direct/FFT path ("split") or the FFT path ("fft").

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

import warnings
from collections.abc import Sequence
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsuite.core_ops.layers.arguments import IntOrSeq, as_tuple
from convsuite.core_ops.layers.factories import conv_function
from convsuite.core_ops.runtime import keep_freed_memory_on_first_use

__all__ = [
    "KERNEL_FALLBACK",
    "ROUTES",
    "SMALL_MAP_POSITIONS",
    "FFTConv1d",
    "FFTConv2d",
    "fft_conv",
    "large_kernel_conv",
    "next_fast_len",
    "choose_route",
    "conv_by_route",
    "kernel_fallback_route",
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
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: Tensor
    ) -> tuple[Tensor | None, ...]:
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


class _SplitDepthwise(torch.autograd.Function):
    """Depthwise convolution (stride 1, dilation 1, symmetric padding) computed by two direct passes
    and one FFT: the forward and the input gradient run torch's direct kernel (channels-last in
    2-D; the input gradient is the correlation of ``grad_y`` with the flipped kernel), the weight
    gradient runs by FFT (:func:`_depthwise_weight_grad`).

    torch's direct depthwise forward and input gradient stay fast up to k = 31 on CPU, while its
    weight gradient falls off a cliff from k = 15 (channels-last, seconds per call); the FFT path
    pays three large transforms for the forward and input gradient that this route avoids.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        weight: Tensor,
        padding: int,
    ) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return _direct_conv(x, weight, None, 1, padding, 1, weight.shape[0], "channels_last")

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: Tensor
    ) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        padding = ctx.padding
        grad_y = grad_y.to(x.dtype)  # bf16 under autocast
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            flipped = weight.flip(tuple(range(2, weight.dim()))).to(x.dtype)
            back_pad = weight.shape[-1] - 1 - padding
            grad_x = _direct_conv(
                grad_y, flipped, None, 1, back_pad, 1, weight.shape[0], "channels_last"
            )
        if ctx.needs_input_grad[1]:
            grad_w = _depthwise_weight_grad(x, grad_y, weight.shape[-1], padding)
        return grad_x, grad_w, None


def _depthwise_weight_grad(x: Tensor, grad_y: Tensor, kernel: int, padding: int) -> Tensor:
    """Weight gradient of a stride-1 depthwise correlation with square kernel ``kernel``, by FFT.

    ``gw[c, 0, t] = sum_{n, p} x[n, c, p + t - padding] grad_y[n, c, p]`` (x zero outside), i.e. one
    circular correlation per channel of size ``L + padding`` per axis (no wrap-around for lags in
    ``[-padding, kernel - padding)``), summed over the batch in the Fourier domain.

    Args:
        x: (N, C, *L) input; grad_y: (N, C, *L_out) output gradient, L_out = L + 2 padding - k + 1.

    Returns:
        (C, 1, *(kernel,) * D), dtype of ``x`` (float32 transforms for lower precisions).
    """
    dims = x.dim() - 2
    axes = tuple(range(-dims, 0))
    compute_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    size = [
        next_fast_len(max(length + padding, out, kernel))
        for length, out in zip(x.shape[2:], grad_y.shape[2:], strict=True)
    ]
    x_f = torch.fft.rfftn(x.to(compute_dtype), s=size, dim=axes)
    g_f = torch.fft.rfftn(grad_y.to(compute_dtype), s=size, dim=axes)
    x_f.mul_(g_f.conj_physical_())
    lags = torch.fft.irfftn(x_f.sum(0), s=size, dim=axes)
    # Lag m = t - padding sits at index m mod size: roll so that t = 0 is index 0, then crop.
    lags = torch.roll(lags, shifts=[padding] * dims, dims=axes)
    return lags[(..., *(slice(0, kernel),) * dims)].unsqueeze(1).to(x.dtype)


# Routes of the dispatcher, measured on this project's 2-core AVX-512 CPU on 2026-12-02 (torch 2.13,
# float32, 2 threads; 2-D input (8, 96, 56, 56) depthwise, NCHW and channels-last, 1-D input
# (8, 96, 4096); the sweep is printed by benchmarks/bench_fft_conv.py). The depthwise entries below
# k = 15 were re-measured on the idle machine (interleaved medians of 5): a sweep under load (7-10)
# had put "channels_last" there, which the idle machine contradicts. For each (spatial dims,
# depthwise, needs_grad): ((smallest kernel extent, route), ...); the last entry whose extent is <=
# the kernel's applies.
# Routes:
#   "direct":        torch's kernel on the input as it is laid out (no layout round trip). Idle,
#                    NCHW depthwise inference: 2-D k = 3-13 1.4-5.1 ms against 1.8-7.7 ms through a
#                    copy to channels-last; 1-D k = 5-13 1.7-1.9 ms against 2.3-2.9 ms. 2-D k = 3
#                    training 5.5 ms against 8.2 ms.
#   "channels_last": torch's kernel in channels-last (2-D: NCHW depthwise is 10-30x slower from
#                    k = 15, and its backward 2-3x slower from k = 5: 19 vs 36 ms at k = 5, 63 vs
#                    171 ms at k = 13), or a (N, C, 1, L) channels-last 2-D convolution for 1-D
#                    (conv1d jumps from 1.7 ms at k = 13 to 10.9 ms at k = 15; the channels-last
#                    form takes 3.2 ms; its backward is faster up to k = 13 only);
#   "kernel":        depthwise_kernels.DirectDepthwise (numba kernels vectorized over channels,
#                    channels-last in 2-D, over positions in 1-D; forward, input and weight
#                    gradient). Training only: measured 2026-12-02 07:45 UTC under load (~9, 2
#                    threads, interleaved medians of 3) against the route it replaced: 1-D k = 5-127
#                    2.3-3.0x (k = 31: 4-5x against conv1d's own), 2-D k = 3-15 1.9-1.1x; 2-D
#                    k = 25-35 0.5-0.8x (the split route keeps k >= 17). Re-measured idle
#                    (08:48 UTC, load 0.4-0.6, 2 threads, NCHW (8, 96, 56, 56), interleaved
#                    medians of 7, against the previous route): 2-D k = 3 0.69x (8.3 vs 5.6 ms:
#                    "direct" keeps k < 5), k = 5 / 7 / 9 / 11 / 13 1.11 / 0.99 / 1.04 / 1.07 /
#                    1.22x (12.2 / 20.4 / 26.0 / 37.8 / 44.3 ms). Register-blocked 2-D kernels
#                    (2026-12-02 10:20 UTC, interleaved old/new DirectDepthwise, load 7-8,
#                    medians of 7): k = 5 / 7 / 9 / 11 / 13 0.94 / 1.07 / 1.12 / 1.21 / 1.26x
#                    the kernels before. Against "split" under that load (medians of 5-7):
#                    k = 11 / 13 / 15 0.84 / 0.83 / 0.61x, k = 17 0.75x. Idle sweep of every
#                    route (2026-12-02 11:42-11:55 UTC, load 0.4, 2 threads, default OpenMP wait
#                    policy, NCHW (8, 96, 56, 56), paired medians of 3; `bench_fft_conv.py`
#                    without --quick): kernel / split k = 5 12.7 / 18.8 ms, k = 7 13.1 / 21.8,
#                    k = 9 21.9 / 18.8, k = 11 25.9 / 22.5, k = 13 31.8 / 23.1, k = 15 39.4 /
#                    23.8, k = 17 46.8 / 26.4: "kernel" keeps k = 5-8, "split" from k = 9. (On
#                    small maps the kernels hold longer: SMALL_MAP_POSITIONS below.)
#   "split":         _SplitDepthwise (direct forward and input gradient, FFT weight gradient);
#   "fft":           fft_conv.
# 3-D was not measured; dense convolutions keep the foundation issue's crossover (15).
ROUTES: dict[tuple[int, bool, bool], tuple[tuple[int, str], ...]] = {
    (1, True, False): ((1, "direct"), (15, "channels_last"), (127, "fft")),
    (1, True, True): ((1, "channels_last"), (5, "kernel"), (129, "split"), (257, "fft")),
    (1, False, False): ((1, "direct"), (15, "fft")),
    (1, False, True): ((1, "direct"), (15, "fft")),
    (2, True, False): ((1, "direct"), (15, "channels_last"), (51, "fft")),
    (2, True, True): ((1, "direct"), (5, "kernel"), (9, "split"), (35, "fft")),
    (2, False, False): ((1, "direct"), (15, "fft")),
    (2, False, True): ((1, "direct"), (15, "fft")),
    (3, True, False): ((1, "direct"), (51, "fft")),
    (3, True, True): ((1, "direct"), (11, "fft")),
    (3, False, False): ((1, "direct"), (15, "fft")),
    (3, False, True): ((1, "direct"), (15, "fft")),
}

# Where "kernel" cannot run (CUDA, bf16 or autocast, a fork()ed child): the depthwise training
# route in its place, by number of spatial axes: the routes ROUTES had before the kernels, and
# "split" wherever ROUTES itself trains by split (2-D from 9: the kernels run there only on a small
# map, SMALL_MAP_POSITIONS). The same values for finite inputs (see depthwise_kernels on infinite
# ones).
KERNEL_FALLBACK: dict[int, tuple[tuple[int, str], ...]] = {
    1: ((1, "channels_last"), (15, "direct"), (17, "split")),
    2: ((1, "direct"), (5, "channels_last"), (9, "split")),
}

# torch's channels-last 2-D depthwise forward is tuned for some kernel sizes only: at 13x13 it takes
# 1.6-1.7x as long as the same kernel zero-padded to 15x15 (measured 108 vs 64 ms under load, 11.7
# vs ~6 ms idle), so inference pads it (values unchanged: the extra taps are zero).
_PADDED_CHANNELS_LAST_KERNEL = {13: 15}


def _route_in(table: tuple[tuple[int, str], ...], extent: int, default: str) -> str:
    """The last route of ``table`` ((smallest extent, route) rising) whose smallest extent
    ``extent`` reaches; ``default`` below them all."""
    route = default
    for smallest, name in table:
        if extent >= smallest:
            route = name
    return route


# 2-D depthwise training on a map of at most this many positions takes "kernel" where ROUTES
# says "split" (where the kernels cannot run, still "split": kernel_fallback_route): on small
# maps the split route's FFT weight gradient (transforms of a few dozen samples per axis,
# per-call costs) loses to the kernels' direct one. Measured 2026-12-02 (1
# thread, interleaved wall-clock medians of 9, load 3.0, fwd+bwd, batch 8): 8 x 8 x 160
# k = 13 / 15 kernel 1.2 / 1.4 ms against split 2.1 / 2.1 ms (the ConvNeXt-atto DCLS stage:
# 17 x 17 cropped to 15 x 15; idle at 2 threads 2.1 against 2.5 ms); 16 x 16 x 80 k = 17 3.5
# against 3.6 ms, k = 31 7.0 against 5.2 ms: 256 positions keep the table's route. Reproduced by
# bench_fft_conv.py's small-map training rows (report only).
SMALL_MAP_POSITIONS = 64


def choose_route(
    dims: int, depthwise: bool, needs_grad: bool, extent: int, positions: int | None = None
) -> str:
    """The route in :data:`ROUTES` for a kernel of dilated extent ``extent``; on a 2-D map of
    ``positions`` <= :data:`SMALL_MAP_POSITIONS` (H * W; None: not known) "kernel" replaces
    "split" in depthwise training."""
    route = _route_in(ROUTES[(dims, depthwise, needs_grad)], extent, "direct")
    if route == "split" and dims == 2 and positions is not None:
        return "kernel" if positions <= SMALL_MAP_POSITIONS else route
    return route


def _direct_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    stride: IntOrSeq,
    padding: IntOrSeq | str,
    dilation: IntOrSeq,
    groups: int,
    route: str = "direct",
) -> Tensor:
    """torch's direct convolution, in channels-last when ``route == "channels_last"``.

    1-D channels-last runs as a (N, C, 1, L) channels-last 2-D convolution. A channels-last 2-D
    depthwise forward without autograd uses :data:`_PADDED_CHANNELS_LAST_KERNEL`.
    """
    dims = weight.dim() - 2
    if route == "channels_last" and dims == 1:
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
    if route == "channels_last" and dims == 2:
        x = x.contiguous(memory_format=torch.channels_last)
    if dims == 2 and x.is_contiguous(memory_format=torch.channels_last):
        weight, padding = _padded_kernel(x, weight, padding, dilation, groups)
    conv = conv_function(dims)
    return conv(x, weight, bias, stride, padding, dilation, groups)


def _padded_kernel(
    x: Tensor, weight: Tensor, padding: IntOrSeq | str, dilation: IntOrSeq, groups: int
) -> tuple[Tensor, IntOrSeq | str]:
    """(weight, padding) zero-padded to a faster channels-last depthwise size, or unchanged.

    Only for inference (no autograd through the weight or input), square depthwise kernels listed
    in :data:`_PADDED_CHANNELS_LAST_KERNEL`, dilation 1 and symmetric padding.
    """
    kernel = tuple(weight.shape[2:])
    target = _PADDED_CHANNELS_LAST_KERNEL.get(kernel[0])
    if (
        target is None
        or len(set(kernel)) != 1
        or weight.shape[1] != 1
        or groups == 1
        or as_tuple(dilation, 2, "dilation") != (1, 1)
        or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad))
    ):
        return weight, padding
    sides = _side_padding(padding, kernel, (1, 1))
    if any(left != right for left, right in sides):
        return weight, padding
    extra = (target - kernel[0]) // 2
    padded = F.pad(weight, [extra] * 4)
    return padded, tuple(left + extra for left, _ in sides)


def large_kernel_conv(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Tensor:
    """Convolution routed to torch's direct kernel (as laid out or channels-last), the numba
    depthwise kernels, :class:`_SplitDepthwise` or :func:`fft_conv`.

    The route comes from :data:`ROUTES`, keyed by the number of spatial axes, whether the
    convolution is depthwise and whether autograd will need a backward pass, and from the map's
    size (:func:`choose_route`; see :func:`conv_by_route` for the routes). Arguments as
    :func:`torch.nn.functional.conv2d`.
    """
    keep_freed_memory_on_first_use()
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad)
    )
    dims = weight.dim() - 2
    depthwise = weight.shape[1] == 1 and groups > 1
    dilation_ = as_tuple(dilation, dims, "dilation")
    if (
        x.dim() == dims + 2
        and dilation_ == (1,) * dims
        and as_tuple(stride, dims, "stride") == (1,) * dims
    ):
        weight, padding = _crop_to_reach(x, weight, padding)
    extent = max(d * (k - 1) + 1 for k, d in zip(weight.shape[2:], dilation_, strict=True))
    positions = x.shape[2:].numel() if x.dim() == dims + 2 else None
    return conv_by_route(
        choose_route(dims, depthwise, needs_grad, extent, positions),
        x,
        weight,
        bias,
        stride,
        padding,
        dilation,
        groups,
    )


def _crop_to_reach(
    x: Tensor, weight: Tensor, padding: IntOrSeq | str
) -> tuple[Tensor, IntOrSeq | str]:
    """(weight, padding) without the outer taps that only ever meet zero padding (stride 1).

    With symmetric padding ``p`` on an axis of length ``L``, tap ``t`` reaches input positions
    ``o - p + t`` for outputs ``o`` in ``[0, L + 2p - k]``; taps below ``p - L_out + 1`` or above
    ``p + L - 1`` read padding only (a 17x17 window on a 4x4 stage map uses its central 7x7). Cropping
    them leaves values and gradients unchanged (the cropped entries' gradient is zero either way).
    """
    kernel = tuple(weight.shape[2:])
    sides = _side_padding(padding, kernel, (1,) * len(kernel))
    slices, new_padding = [], []
    for k, (left, right), length in zip(kernel, sides, x.shape[2:], strict=True):
        reach = reached_taps(length, left, right, k)
        if reach is None:
            return weight, padding
        slices.append(slice(*reach))
        new_padding.append(left - reach[0])
    if all(sl.start == 0 for sl in slices):
        return weight, padding
    return weight[(..., *slices)], tuple(new_padding)


def reached_taps(length: int, left: int, right: int, size: int) -> tuple[int, int] | None:
    """(start, stop) of the taps of a window of ``size`` that a stride-1 convolution with ``left``
    and ``right`` zeros of padding on an axis of ``length`` reaches with real input: tap ``t``
    reads input ``o - left + t`` for outputs ``o`` in ``[0, length + left + right - size]``.
    None where the crop would not be symmetric (the same number of taps dropped on both sides:
    unequal padding) or there is no output (the convolution reports that itself).
    Shared by :func:`large_kernel_conv` and the DCLS layers (which render only these taps)."""
    outputs = length + left + right - size + 1
    start, stop = max(0, left - outputs + 1), min(size, left + length)
    if outputs < 1 or left != right or start != size - stop:
        return None
    return start, stop


def conv_by_route(
    route: str,
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntOrSeq = 1,
    padding: IntOrSeq | str = 0,
    dilation: IntOrSeq = 1,
    groups: int = 1,
) -> Tensor:
    """The convolution computed by one route of :data:`ROUTES` ("direct", "channels_last",
    "kernel", "split", "fft"); what :func:`large_kernel_conv` runs, and what the benchmark's sweep
    times.

    "kernel" and "split" need a depthwise square kernel, stride 1, dilation 1 and the same padding
    (< k) on both sides of every axis; otherwise they run the "channels_last" route (where torch
    also reports a channel count that does not match the weight). "kernel" also needs 1 or 2
    spatial axes and float32/float64 CPU tensors outside autocast, and not a fork()ed child of a
    process that ran it (numba's OpenMP pool; a warning, once); otherwise it runs the route the
    table had before the kernels (:func:`kernel_fallback_route`).
    """
    if route in ("kernel", "split"):
        dims = weight.dim() - 2
        kernel = tuple(weight.shape[2:])
        sides = _side_padding(padding, kernel, as_tuple(dilation, dims, "dilation"))
        if (
            x.dim() == dims + 2
            and x.shape[1] == groups
            and len(set(kernel)) == 1
            and weight.shape[1] == 1
            and weight.shape[0] == groups
            and all(s == 1 for s in as_tuple(stride, dims, "stride"))
            and all(d == 1 for d in as_tuple(dilation, dims, "dilation"))
            and len(set(sides)) == 1
            and sides[0][0] == sides[0][1] < kernel[0]
        ):
            if route == "kernel" and not _kernel_applies(x, weight):
                route = kernel_fallback_route(dims, kernel[0])
            if route in ("kernel", "split"):
                if route == "kernel":
                    from convsuite.core_ops.layers.depthwise_kernels import DirectDepthwise

                    y = DirectDepthwise.apply(x, weight, sides[0][0])
                else:
                    y = _SplitDepthwise.apply(x, weight, sides[0][0])
                return y if bias is None else y + bias.reshape(1, -1, *([1] * dims))
        else:
            route = "channels_last"
    if route == "fft":
        return fft_conv(x, weight, bias, stride, padding, dilation, groups)
    if route not in ("direct", "channels_last"):
        raise ValueError(
            f"route must be one of direct, channels_last, kernel, split, fft; got {route!r}"
        )
    return _direct_conv(x, weight, bias, stride, padding, dilation, groups, route)


def kernel_fallback_route(dims: int, extent: int) -> str:
    """The route :func:`conv_by_route` runs for "kernel" where the kernels do not apply
    (:data:`KERNEL_FALLBACK`; "split" for 3-D)."""
    return _route_in(KERNEL_FALLBACK.get(dims, ()), extent, "split")


_warned_forked = False


def _kernel_applies(x: Tensor, weight: Tensor) -> bool:
    """Whether :class:`~convsuite.core_ops.layers.depthwise_kernels.DirectDepthwise` computes
    this depthwise convolution as torch would: 1-D or 2-D, matching channel counts, float32/float64
    CPU, no autocast, and not in a fork()ed child of a process that ran the kernels (numba's
    OpenMP pool; warns once)."""
    global _warned_forked
    if not (
        x.dim() in (3, 4)
        and x.dim() == weight.dim()
        and x.shape[1] == weight.shape[0]
        and x.dtype in (torch.float32, torch.float64)
        and weight.dtype == x.dtype
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and not torch.is_autocast_enabled("cpu")
    ):
        return False
    from convsuite.core_ops.layers.depthwise_kernels import usable_here

    if usable_here():
        return True
    if not _warned_forked:
        _warned_forked = True
        warnings.warn(
            "convsuite: the 'kernel' depthwise route does not run in a fork()ed child of a "
            "process that ran it (numba's OpenMP pool); using the previous routes here "
            "(same values, slower training)",
            RuntimeWarning,
            stacklevel=3,
        )
    return False


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
