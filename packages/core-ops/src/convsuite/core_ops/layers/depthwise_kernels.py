"""Direct channels-last depthwise convolution kernels (numba), forward and backward.

Layout (N, H, W, C) with the channel vector contiguous, so every tap is a SIMD multiply-add over
channels: ``y[n, h, w, :] += k[a, b, :] * x[n, h + a - p, w + b - p, :]``. The forward and the
input gradient (the forward with the kernel flipped and padding ``k - 1 - p``) run in parallel
over (batch, output rows); the weight gradient ``gk[a, b, :] = sum_{n, h, w} x[n, h + a - p,
w + b - p, :] g[n, h, w, :]`` is summed per block of rows, then over blocks. 1-D inputs run as
H = 1. Stride 1, dilation 1, square kernels and symmetric zero padding only (the dispatcher in
:mod:`convsuite.core_ops.layers.fft_conv` checks this and routes everything else elsewhere).

numba compiles each kernel on first call (a few seconds, cached on disk with ``cache=True``).
"""

from __future__ import annotations

import os

import numba
import numpy as np
import torch
import torch.nn.functional as F
from numba import prange
from torch import Tensor

__all__ = ["DirectDepthwise", "depthwise_forward", "depthwise_weight_grad", "usable_here"]

# The process whose numba thread pool the kernels started. numba's OpenMP layer (the one it picks
# without TBB) terminates a fork()ed child that enters a parallel region after the parent did, so
# a child process (a DataLoader worker, a multiprocessing pool) must not call the kernels.
_POOL_PID: int | None = None


def usable_here() -> bool:
    """False in a fork()ed child of a process that has run the kernels (see ``_POOL_PID``)."""
    return _POOL_PID is None or _POOL_PID == os.getpid()


# Output positions per work item along W: a (TILE, C) accumulator block stays in L1 while every tap
# is added into it (1-D rows are thousands of positions long).
TILE = 64


@numba.njit(parallel=True, fastmath=True, cache=True)
def _forward_nhwc(x: np.ndarray, k: np.ndarray, pad_h: int, pad_w: int, out: np.ndarray) -> None:
    """out (N, Ho, Wo, C) = depthwise correlation of x (N, H, W, C) with k (KH, KW, C).

    Work items are (n, output row, tile of TILE columns); four taps per pass over the channel
    vector (one load and store of the accumulator per four multiply-adds).
    """
    n_batch, height, width, channels = x.shape
    _, out_h, out_w, _ = out.shape
    size_h, size_w = k.shape[0], k.shape[1]
    tiles = (out_w + TILE - 1) // TILE
    for item in prange(n_batch * out_h * tiles):
        row = item // tiles
        w_start = (item - row * tiles) * TILE
        w_stop = min(out_w, w_start + TILE)
        n = row // out_h
        h = row - n * out_h
        acc = out[n, h]
        acc[w_start:w_stop] = 0.0
        for a in range(size_h):
            ih = h + a - pad_h
            if ih < 0 or ih >= height:
                continue
            x_row = x[n, ih]
            taps = k[a]
            for w in range(w_start, w_stop):
                dst = acc[w]
                b = max(0, pad_w - w)
                b_stop = min(size_w, width + pad_w - w)
                while b + 4 <= b_stop:
                    t0, t1, t2, t3 = taps[b], taps[b + 1], taps[b + 2], taps[b + 3]
                    s = w + b - pad_w
                    s0, s1, s2, s3 = x_row[s], x_row[s + 1], x_row[s + 2], x_row[s + 3]
                    for c in range(channels):
                        dst[c] += (t0[c] * s0[c] + t1[c] * s1[c]) + (t2[c] * s2[c] + t3[c] * s3[c])
                    b += 4
                while b < b_stop:
                    t0, s0 = taps[b], x_row[w + b - pad_w]
                    for c in range(channels):
                        dst[c] += t0[c] * s0[c]
                    b += 1


@numba.njit(parallel=True, fastmath=True, cache=True)
def _weight_grad_nhwc(
    x: np.ndarray, g: np.ndarray, pad_h: int, pad_w: int, parts: np.ndarray
) -> None:
    """parts (B, KH, KW, C): per block of work items (n, output row, tile of TILE columns), the
    sum over the block of x shifted by each tap times g (x (N, H, W, C), g (N, Ho, Wo, C)); four
    output columns per pass over the channel vector."""
    n_batch, height, width, channels = x.shape
    _, out_h, out_w, _ = g.shape
    blocks, size_h, size_w = parts.shape[0], parts.shape[1], parts.shape[2]
    tiles = (out_w + TILE - 1) // TILE
    items = n_batch * out_h * tiles
    for block in prange(blocks):
        part = parts[block]
        part[:] = 0.0
        for item in range(block * items // blocks, (block + 1) * items // blocks):
            row = item // tiles
            w_start = (item - row * tiles) * TILE
            w_end = min(out_w, w_start + TILE)
            n = row // out_h
            h = row - n * out_h
            g_row = g[n, h]
            for a in range(size_h):
                ih = h + a - pad_h
                if ih < 0 or ih >= height:
                    continue
                x_row = x[n, ih]
                for b in range(size_w):
                    dst = part[a, b]
                    w = max(w_start, pad_w - b)
                    w_stop = min(w_end, width + pad_w - b)
                    while w + 4 <= w_stop:
                        s = w + b - pad_w
                        s0, s1, s2, s3 = x_row[s], x_row[s + 1], x_row[s + 2], x_row[s + 3]
                        g0, g1, g2, g3 = g_row[w], g_row[w + 1], g_row[w + 2], g_row[w + 3]
                        for c in range(channels):
                            dst[c] += (s0[c] * g0[c] + s1[c] * g1[c]) + (
                                s2[c] * g2[c] + s3[c] * g3[c]
                            )
                        w += 4
                    while w < w_stop:
                        s0, g0 = x_row[w + b - pad_w], g_row[w]
                        for c in range(channels):
                            dst[c] += s0[c] * g0[c]
                        w += 1


# 1-D: positions per work item of the (N, C, L) kernels.
ROW_TILE = 512
# 1-D taps per pass over a tile (one load and store of the accumulator per TAP_BLOCK
# multiply-adds); the 1-D kernels take their taps zero-padded to a multiple of it (see
# ``_padded_taps``), so every pass is a full block (a remainder of single-tap passes cost as much
# as full ones: K = 31 ran 7 four-tap and 3 one-tap passes).
TAP_BLOCK = 4


@numba.njit(parallel=True, fastmath=True, cache=True)
def _forward_ncl(x: np.ndarray, k: np.ndarray, pad: int, out: np.ndarray) -> None:
    """out (N, C, Lo) = depthwise correlation of x (N, C, L) with k (C, KP), zero padding ``pad``;
    KP a multiple of TAP_BLOCK (trailing taps zero), Lo = L + 2 pad - K + 1 for the true K.

    One (n, c) row per work item, in tiles of ROW_TILE outputs: each tile's input span is copied
    into one zero-padded buffer per row so the inner loop (four taps, contiguous positions) has
    no bounds; the tile accumulates in place in ``out``. The taps' spans are slices indexed by
    the loop counter, which the compiler knows is non-negative (indexing ``span[i + b]`` made it
    emit a negative-index check that turned the loads into gathers).
    """
    n_batch, channels, length = x.shape
    out_len = out.shape[2]
    size = k.shape[1]
    for row in prange(n_batch * channels):
        n = row // channels
        c = row - n * channels
        span = np.empty(ROW_TILE + size - 1, dtype=x.dtype)
        dst_row = out[n, c]
        for start in range(0, out_len, ROW_TILE):
            count = min(out_len - start, ROW_TILE)
            span[:] = 0.0
            low = max(0, start - pad)
            high = min(length, start - pad + count + size - 1)
            span[low - (start - pad) : high - (start - pad)] = x[n, c, low:high]
            acc = dst_row[start : start + count]
            acc[:] = 0.0
            for block in range(size // TAP_BLOCK):
                b = block * TAP_BLOCK
                t0, t1, t2, t3 = k[c, b], k[c, b + 1], k[c, b + 2], k[c, b + 3]
                s0, s1, s2, s3 = span[b:], span[b + 1 :], span[b + 2 :], span[b + 3 :]
                for i in range(count):
                    acc[i] += (t0 * s0[i] + t1 * s1[i]) + (t2 * s2[i] + t3 * s3[i])


@numba.njit(parallel=True, fastmath=True, cache=True)
def _weight_grad_ncl(x: np.ndarray, g: np.ndarray, pad: int, grad: np.ndarray) -> None:
    """grad (C, KP)[c, b] = sum over n and outputs o of x[n, c, o + b - pad] g[n, c, o] (x zero
    outside), KP a multiple of TAP_BLOCK (the taps past the true K are computed and dropped by
    the caller); one channel per work item, four taps per pass over the row (slices as in
    :func:`_forward_ncl`)."""
    n_batch, channels, length = x.shape
    out_len = g.shape[2]
    size = grad.shape[1]
    for c in prange(channels):
        sums = np.zeros(size, dtype=np.float64)
        span = np.zeros(out_len + size - 1, dtype=x.dtype)
        low, high = max(0, -pad), min(length, out_len + size - 1 - pad)
        for n in range(n_batch):
            span[low + pad : high + pad] = x[n, c, low:high]
            g_row = g[n, c]
            for block in range(size // TAP_BLOCK):
                b = block * TAP_BLOCK
                x0, x1, x2, x3 = span[b:], span[b + 1 :], span[b + 2 :], span[b + 3 :]
                s0 = s1 = s2 = s3 = np.float32(0.0)
                for i in range(out_len):
                    gi = g_row[i]
                    s0 += x0[i] * gi
                    s1 += x1[i] * gi
                    s2 += x2[i] * gi
                    s3 += x3[i] * gi
                sums[b] += s0
                sums[b + 1] += s1
                sums[b + 2] += s2
                sums[b + 3] += s3
        for b in range(size):
            grad[c, b] = sums[b]


def _padded_taps(size: int) -> int:
    """The 1-D kernels' tap count for a kernel of ``size`` taps: a multiple of TAP_BLOCK."""
    return -(-size // TAP_BLOCK) * TAP_BLOCK


def _set_threads() -> int:
    """numba's thread count set to torch's (at most numba's pool size); returns it."""
    global _POOL_PID
    _POOL_PID = os.getpid()
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads


def _correlate(x: Tensor, taps: Tensor, padding: int) -> Tensor:
    """Depthwise correlation in the kernels' layouts: x (N, H, W, C) with taps (K, K, C), or
    x (N, C, L) with taps (C, K); returns the output in the same layout."""
    _set_threads()
    if x.dim() == 3:
        size = taps.shape[1]
        out = x.new_empty(*x.shape[:2], x.shape[2] + 2 * padding - size + 1)
        taps = F.pad(taps, (0, _padded_taps(size) - size))
        _forward_ncl(x.numpy(), taps.numpy(), padding, out.numpy())
        return out
    crop = 2 * padding - taps.shape[0] + 1
    out = x.new_empty(x.shape[0], x.shape[1] + crop, x.shape[2] + crop, x.shape[3])
    _forward_nhwc(x.numpy(), taps.numpy(), padding, padding, out.numpy())
    return out


def _taps(weight: Tensor) -> Tensor:
    """(C, 1, *K) weight -> the kernels' tap layout: (C, K) for 1-D, (K, K, C) for 2-D."""
    weight = weight.detach()
    if weight.dim() == 3:
        return weight[:, 0].contiguous()
    return weight[:, 0].permute(1, 2, 0).contiguous()


def _from_layout(t: Tensor) -> Tensor:
    """Kernel layout -> (N, C, *L) view (2-D: channels-last in memory)."""
    return t if t.dim() == 3 else t.permute(0, 3, 1, 2)


def _to_layout(t: Tensor) -> Tensor:
    """(N, C, *L) -> the kernels' layout, contiguous (2-D (N, H, W, C): a view when ``t`` is
    channels-last)."""
    t = t.detach()
    return t.contiguous() if t.dim() == 3 else t.permute(0, 2, 3, 1).contiguous()


def depthwise_forward(x: Tensor, weight: Tensor, padding: int) -> Tensor:
    """Stride-1 depthwise correlation of x (N, C, *L) with weight (C, 1, *(K,) * D), D = 1 or 2,
    zero padding ``padding`` (< K) on both sides of each axis; no autograd.

    Returns (N, C, *L_out), L_out = L + 2 padding - K + 1 (2-D: channels-last in memory). A
    channels-last 2-D input is read in place (otherwise converted once).
    """
    return _from_layout(_correlate(_to_layout(x), _taps(weight.to(x.dtype)), padding))


def _weight_grad(x: Tensor, grad_y: Tensor, kernel: int, padding: int) -> Tensor:
    """Weight gradient (C, 1, *(kernel,) * D) from x and grad_y in the kernels' layout."""
    threads = _set_threads()
    if x.dim() == 3:
        grad = x.new_empty(x.shape[1], _padded_taps(kernel))
        _weight_grad_ncl(x.numpy(), grad_y.numpy(), padding, grad.numpy())
        return grad[:, None, :kernel].contiguous()
    parts = x.new_empty(threads, kernel, kernel, x.shape[3])
    _weight_grad_nhwc(x.numpy(), grad_y.numpy(), padding, padding, parts.numpy())
    return parts.sum(0).permute(2, 0, 1).unsqueeze(1).contiguous()


def depthwise_weight_grad(x: Tensor, grad_y: Tensor, kernel: int, padding: int) -> Tensor:
    """Weight gradient (C, 1, *(kernel,) * D) of :func:`depthwise_forward` for the output
    gradient ``grad_y`` (N, C, *L_out); no autograd. Channels-last 2-D tensors are read in place."""
    return _weight_grad(_to_layout(x), _to_layout(grad_y.to(x.dtype)), kernel, padding)


def _kernel_layout(t: Tensor) -> Tensor:
    """``t`` (N, C, *L) with the kernels' memory layout (2-D: channels-last), detached."""
    return _from_layout(_to_layout(t))


class DirectDepthwise(torch.autograd.Function):
    """Stride-1 depthwise convolution with symmetric zero padding, all three passes by
    :func:`depthwise_forward` and :func:`depthwise_weight_grad`: forward, input gradient (the
    forward of ``grad_y`` with the flipped kernel and padding ``K - 1 - padding``) and weight
    gradient. float32 / float64 CPU tensors, D = 1 or 2; the input is converted to the kernels'
    layout once and kept for the backward pass.

    Double backward (``create_graph=True``): the backward pass is then torch's differentiable
    convolution gradient (the kernels have no derivative of their own), so higher derivatives
    are torch's.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, x: Tensor, weight: Tensor, padding: int
    ) -> Tensor:
        x_l = _kernel_layout(x)
        ctx.save_for_backward(x, x_l, weight)
        ctx.padding = padding
        return depthwise_forward(x_l, weight, padding)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_y: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None]:
        x, x_l, weight = ctx.saved_tensors
        padding, size = ctx.padding, weight.shape[-1]
        if torch.is_grad_enabled():
            return (
                *_differentiable_backward(x, weight, padding, grad_y, ctx.needs_input_grad),
                None,
            )
        g_l = _kernel_layout(grad_y.to(x_l.dtype))
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            flipped = weight.flip(tuple(range(2, weight.dim())))
            grad_x = depthwise_forward(g_l, flipped, size - 1 - padding)
        if ctx.needs_input_grad[1]:
            grad_w = depthwise_weight_grad(x_l, g_l, size, padding).to(weight.dtype)
        return grad_x, grad_w, None


def _differentiable_backward(
    x: Tensor, weight: Tensor, padding: int, grad_y: Tensor, needs: tuple[bool, ...]
) -> tuple[Tensor | None, Tensor | None]:
    """(grad_x, grad_w) by torch's convolution under autograd (for ``create_graph=True``)."""
    conv = torch.nn.functional.conv1d if x.dim() == 3 else torch.nn.functional.conv2d
    inputs = [t for t, need in zip((x, weight), needs[:2], strict=True) if need]
    with torch.enable_grad():
        y = conv(x, weight.to(x.dtype), None, 1, padding, 1, x.shape[1])
        grads = iter(torch.autograd.grad(y, inputs, grad_y, create_graph=True))
    return tuple(next(grads) if need else None for need in needs[:2])  # type: ignore[return-value]
