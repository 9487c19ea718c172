"""Direct channels-last depthwise convolution kernels (numba), forward and backward.

Layout (N, H, W, C) with the channel vector contiguous, so every tap is a SIMD multiply-add over
channels: ``y[n, h, w, :] += k[a, b, :] * x[n, h + a - p, w + b - p, :]``. The forward and the
input gradient (the forward with the kernel flipped and padding ``k - 1 - p``) run in parallel
over (batch, output rows); the weight gradient ``gk[a, b, :] = sum_{n, h, w} x[n, h + a - p,
w + b - p, :] g[n, h, w, :]`` is summed per block of rows, then over blocks. The 2-D kernels
read the input zero-padded along W (one copy) and keep blocks of output columns and taps in
registers; 1-D inputs run per (n, c) row, vectorized over positions. Stride 1, dilation 1,
square kernels and symmetric zero padding only (the dispatcher in
:mod:`convsuite.core_ops.layers.fft_conv` checks this and routes everything else elsewhere).

Memory (2-D, training): the padded copy ``(N, H, W + 2 padding + KP - K, C)`` of the input is
kept from the forward to the backward beside the input itself (saved for double backward), and
the backward makes one such copy of ``grad_y``: for (8, 96, 56, 56) float32 at K = 13, 11.7 MB
each against the input's 9.6 MB, where torch's direct convolution keeps only the input. Measured
once (2026-12-02, peak RSS of one forward+backward over the RSS before it, 2 threads): 40.5 MB
against torch's 36.2 MB (torch's backward has buffers of its own).

Values: torch's for finite inputs (up to summation order). The zero taps that pad a kernel to
a multiple of four columns (``KP - K``) multiply real input, so an infinite input gives NaN one
column further than torch's convolution does.

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


@numba.njit(inline="always")
def _work_item(item: int, tiles: int, out_h: int, out_w: int) -> tuple[int, int, int, int]:
    """Work item -> (n, output row, first column, column stop) for tiles of TILE columns."""
    row = item // tiles
    w_start = (item - row * tiles) * TILE
    n = row // out_h
    return n, row - n * out_h, w_start, min(out_w, w_start + TILE)


@numba.njit(parallel=True, fastmath=True, cache=True)
def _forward_nhwc(x: np.ndarray, k: np.ndarray, pad_h: int, out: np.ndarray) -> None:
    """out (N, Ho, Wo, C) = depthwise correlation of x (N, H, Wo + KW - 1, C), already
    zero-padded along W, with k (KH, KW, C) and zero padding ``pad_h`` along H.

    Work items are (n, output row, tile of TILE columns). Register blocking: each pass over the
    channel vector updates four output columns with eight taps (eleven input columns; 23 loads
    and 4 stores per 32 multiply-adds, against 10 memory operations per 4 before), then one
    block of four taps and single taps for the rest; columns past the last block of four take
    four taps at a time.
    """
    n_batch, height, _, channels = x.shape
    _, out_h, out_w, _ = out.shape
    size_h, size_w = k.shape[0], k.shape[1]
    tiles = (out_w + TILE - 1) // TILE
    for item in prange(n_batch * out_h * tiles):
        n, h, w_start, w_stop = _work_item(item, tiles, out_h, out_w)
        acc = out[n, h]
        acc[w_start:w_stop] = 0.0
        for a in range(size_h):
            ih = h + a - pad_h
            if ih < 0 or ih >= height:
                continue
            x_row = x[n, ih]
            taps = k[a]
            w = w_start
            while w + 4 <= w_stop:
                d = acc[w : w + 4]
                b = 0
                while b + 8 <= size_w:
                    t = taps[b : b + 8]
                    s = x_row[w + b : w + b + 11]
                    for c in range(channels):
                        t0, t1, t2, t3 = t[0, c], t[1, c], t[2, c], t[3, c]
                        t4, t5, t6, t7 = t[4, c], t[5, c], t[6, c], t[7, c]
                        s0, s1, s2, s3, s4 = s[0, c], s[1, c], s[2, c], s[3, c], s[4, c]
                        s5, s6, s7, s8, s9, s10 = (
                            s[5, c],
                            s[6, c],
                            s[7, c],
                            s[8, c],
                            s[9, c],
                            s[10, c],
                        )
                        d[0, c] += ((t0 * s0 + t1 * s1) + (t2 * s2 + t3 * s3)) + (
                            (t4 * s4 + t5 * s5) + (t6 * s6 + t7 * s7)
                        )
                        d[1, c] += ((t0 * s1 + t1 * s2) + (t2 * s3 + t3 * s4)) + (
                            (t4 * s5 + t5 * s6) + (t6 * s7 + t7 * s8)
                        )
                        d[2, c] += ((t0 * s2 + t1 * s3) + (t2 * s4 + t3 * s5)) + (
                            (t4 * s6 + t5 * s7) + (t6 * s8 + t7 * s9)
                        )
                        d[3, c] += ((t0 * s3 + t1 * s4) + (t2 * s5 + t3 * s6)) + (
                            (t4 * s7 + t5 * s8) + (t6 * s9 + t7 * s10)
                        )
                    b += 8
                if b + 4 <= size_w:
                    t = taps[b : b + 4]
                    s = x_row[w + b : w + b + 7]
                    for c in range(channels):
                        t0, t1, t2, t3 = t[0, c], t[1, c], t[2, c], t[3, c]
                        s0, s1, s2, s3 = s[0, c], s[1, c], s[2, c], s[3, c]
                        s4, s5, s6 = s[4, c], s[5, c], s[6, c]
                        d[0, c] += (t0 * s0 + t1 * s1) + (t2 * s2 + t3 * s3)
                        d[1, c] += (t0 * s1 + t1 * s2) + (t2 * s3 + t3 * s4)
                        d[2, c] += (t0 * s2 + t1 * s3) + (t2 * s4 + t3 * s5)
                        d[3, c] += (t0 * s3 + t1 * s4) + (t2 * s5 + t3 * s6)
                    b += 4
                while b < size_w:
                    t0 = taps[b]
                    s = x_row[w + b : w + b + 4]
                    for c in range(channels):
                        d[0, c] += t0[c] * s[0, c]
                        d[1, c] += t0[c] * s[1, c]
                        d[2, c] += t0[c] * s[2, c]
                        d[3, c] += t0[c] * s[3, c]
                    b += 1
                w += 4
            while w < w_stop:
                dst = acc[w]
                b = 0
                while b + 4 <= size_w:
                    t = taps[b : b + 4]
                    s = x_row[w + b : w + b + 4]
                    for c in range(channels):
                        dst[c] += (t[0, c] * s[0, c] + t[1, c] * s[1, c]) + (
                            t[2, c] * s[2, c] + t[3, c] * s[3, c]
                        )
                    b += 4
                while b < size_w:
                    t0, s0 = taps[b], x_row[w + b]
                    for c in range(channels):
                        dst[c] += t0[c] * s0[c]
                    b += 1
                w += 1


@numba.njit(parallel=True, fastmath=True, cache=True)
def _weight_grad_nhwc(
    x: np.ndarray, g: np.ndarray, pad_h: int, g_start: int, parts: np.ndarray
) -> None:
    """parts (B, KH, KW, C): per block of work items (n, output row, tile of TILE columns), the
    sum over the block of x shifted by each tap times g (x (N, H, Wo + KW - 1, C) already
    zero-padded along W, zero padding ``pad_h`` along H; g (N, Ho, Wg, C) whose output columns
    start at column ``g_start``: the input gradient's padded copy is read in place).

    Register blocking: each pass over the channel vector updates four taps' sums from eight
    output columns (23 loads and 4 stores per 32 multiply-adds); single taps past the last block
    of four take eight columns at a time, and columns past the last block of eight one at a time.
    """
    n_batch, height, width, channels = x.shape
    out_h = g.shape[1]
    blocks, size_h, size_w = parts.shape[0], parts.shape[1], parts.shape[2]
    out_w = width - size_w + 1
    quads = size_w // 4
    tiles = (out_w + TILE - 1) // TILE
    items = n_batch * out_h * tiles
    for block in prange(blocks):
        part = parts[block]
        part[:] = 0.0
        for item in range(block * items // blocks, (block + 1) * items // blocks):
            n, h, w_start, w_end = _work_item(item, tiles, out_h, out_w)
            g_row = g[n, h, g_start : g_start + out_w]
            for a in range(size_h):
                ih = h + a - pad_h
                if ih < 0 or ih >= height:
                    continue
                x_row = x[n, ih]
                for q in range(quads):
                    b = 4 * q
                    d = part[a, b : b + 4]
                    w = w_start
                    while w + 8 <= w_end:
                        s = x_row[w + b : w + b + 11]
                        gg = g_row[w : w + 8]
                        for c in range(channels):
                            g0, g1, g2, g3 = gg[0, c], gg[1, c], gg[2, c], gg[3, c]
                            g4, g5, g6, g7 = gg[4, c], gg[5, c], gg[6, c], gg[7, c]
                            s0, s1, s2, s3, s4 = s[0, c], s[1, c], s[2, c], s[3, c], s[4, c]
                            s5, s6, s7, s8, s9, s10 = (
                                s[5, c],
                                s[6, c],
                                s[7, c],
                                s[8, c],
                                s[9, c],
                                s[10, c],
                            )
                            d[0, c] += ((s0 * g0 + s1 * g1) + (s2 * g2 + s3 * g3)) + (
                                (s4 * g4 + s5 * g5) + (s6 * g6 + s7 * g7)
                            )
                            d[1, c] += ((s1 * g0 + s2 * g1) + (s3 * g2 + s4 * g3)) + (
                                (s5 * g4 + s6 * g5) + (s7 * g6 + s8 * g7)
                            )
                            d[2, c] += ((s2 * g0 + s3 * g1) + (s4 * g2 + s5 * g3)) + (
                                (s6 * g4 + s7 * g5) + (s8 * g6 + s9 * g7)
                            )
                            d[3, c] += ((s3 * g0 + s4 * g1) + (s5 * g2 + s6 * g3)) + (
                                (s7 * g4 + s8 * g5) + (s9 * g6 + s10 * g7)
                            )
                        w += 8
                    while w < w_end:
                        s = x_row[w + b : w + b + 4]
                        g0 = g_row[w]
                        for c in range(channels):
                            d[0, c] += s[0, c] * g0[c]
                            d[1, c] += s[1, c] * g0[c]
                            d[2, c] += s[2, c] * g0[c]
                            d[3, c] += s[3, c] * g0[c]
                        w += 1
                for b in range(4 * quads, size_w):
                    dst = part[a, b]
                    w = w_start
                    while w + 8 <= w_end:
                        s = x_row[w + b : w + b + 8]
                        gg = g_row[w : w + 8]
                        for c in range(channels):
                            dst[c] += (
                                (s[0, c] * gg[0, c] + s[1, c] * gg[1, c])
                                + (s[2, c] * gg[2, c] + s[3, c] * gg[3, c])
                            ) + (
                                (s[4, c] * gg[4, c] + s[5, c] * gg[5, c])
                                + (s[6, c] * gg[6, c] + s[7, c] * gg[7, c])
                            )
                        w += 8
                    while w < w_end:
                        s0, g0 = x_row[w + b], g_row[w]
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


def _tap_width(size: int) -> int:
    """The 2-D kernels' tap columns for a kernel ``size`` wide: rounded up to a multiple of four
    when two or three taps would be left over (one more block of four with zero taps costs less
    than two or three single-tap passes), else ``size`` (one single tap left at most)."""
    return size + (-size) % 4 if size % 4 >= 2 else size


def _set_threads() -> int:
    """numba's thread count set to torch's (at most numba's pool size); returns it."""
    global _POOL_PID
    _POOL_PID = os.getpid()
    threads = max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(threads)
    return threads


def _correlate(x: Tensor, taps: Tensor, padding: int) -> Tensor:
    """Depthwise correlation in the kernels' layouts: x (N, H, W + 2 padding + KP - K, C) from
    :func:`_to_layout` (padded along W) with taps (K, KP, C) from :func:`_taps`, or x (N, C, L)
    with taps (C, K); returns the output in the same layout, unpadded: (N, Ho, Wo, C) or
    (N, C, Lo)."""
    _set_threads()
    if x.dim() == 3:
        size = taps.shape[1]
        out = x.new_empty(*x.shape[:2], x.shape[2] + 2 * padding - size + 1)
        taps = F.pad(taps, (0, _padded_taps(size) - size))
        _forward_ncl(x.numpy(), taps.numpy(), padding, out.numpy())
        return out
    out_h, out_w = x.shape[1] + 2 * padding - taps.shape[0] + 1, x.shape[2] - taps.shape[1] + 1
    out = x.new_empty(x.shape[0], out_h, out_w, x.shape[3])
    _forward_nhwc(x.numpy(), taps.numpy(), padding, out.numpy())
    return out


def _taps(weight: Tensor) -> Tensor:
    """(C, 1, *K) weight -> the kernels' tap layout: (C, K) for 1-D; (K, KP, C) for 2-D, with
    KP - K zero columns (:func:`_tap_width`)."""
    weight = weight.detach()
    if weight.dim() == 3:
        return weight[:, 0].contiguous()
    size = weight.shape[-1]
    return F.pad(weight[:, 0], (0, _tap_width(size) - size)).permute(1, 2, 0).contiguous()


def _from_layout(t: Tensor) -> Tensor:
    """Kernel layout -> (N, C, *L) view (2-D: channels-last in memory)."""
    return t if t.dim() == 3 else t.permute(0, 3, 1, 2)


def _to_layout(t: Tensor, padding: int = 0, size: int = 0) -> Tensor:
    """(N, C, *L) -> the kernels' layout, contiguous and detached: (N, C, L) for 1-D, and for
    2-D (N, H, W + 2 padding + KP - K, C) with ``padding`` zero columns on the left and
    ``padding + KP - K`` on the right for a kernel ``size`` wide (KP = :func:`_tap_width`;
    ``size`` 0: none), in one copy (the 2-D kernels' column blocks then need no bounds; a view
    when there is no padding and ``t`` is channels-last)."""
    t = t.detach()
    if t.dim() == 3:
        return t.contiguous()
    right = padding + (_tap_width(size) - size if size else 0)
    if not padding and not right:
        return t.permute(0, 2, 3, 1).contiguous()
    n, c, h, w = t.shape
    out = t.new_empty(n, h, w + padding + right, c)
    out[:, :, :padding] = 0.0
    out[:, :, w + padding :] = 0.0
    out[:, :, padding : w + padding] = t.permute(0, 2, 3, 1)
    return out


def depthwise_forward(x: Tensor, weight: Tensor, padding: int) -> Tensor:
    """Stride-1 depthwise correlation of x (N, C, *L) with weight (C, 1, *(K,) * D), D = 1 or 2,
    zero padding ``padding`` (< K) on both sides of each axis; no autograd.

    Returns (N, C, *L_out), L_out = L + 2 padding - K + 1 (2-D: channels-last in memory). A 2-D
    input is copied once into the kernels' padded layout.
    """
    return _forward_in_layout(_to_layout(x, padding, weight.shape[-1]), weight, padding)


def _forward_in_layout(x_l: Tensor, weight: Tensor, padding: int) -> Tensor:
    """:func:`depthwise_forward` of an input already in the kernels' layout (:func:`_to_layout`
    for this kernel and padding)."""
    return _from_layout(_correlate(x_l, _taps(weight.to(x_l.dtype)), padding))


def _weight_grad(
    x: Tensor, grad_y: Tensor, kernel: int, padding: int, grad_start: int = 0
) -> Tensor:
    """Weight gradient (C, 1, *(kernel,) * D) from x and grad_y in the kernels' layout (2-D:
    x padded along W by :func:`_to_layout` for ``kernel``, grad_y's output columns starting at
    ``grad_start``)."""
    threads = _set_threads()
    if x.dim() == 3:
        grad = x.new_empty(x.shape[1], _padded_taps(kernel))
        _weight_grad_ncl(x.numpy(), grad_y.numpy(), padding, grad.numpy())
        return grad[:, None, :kernel].contiguous()
    parts = x.new_empty(threads, kernel, _tap_width(kernel), x.shape[3])
    _weight_grad_nhwc(x.numpy(), grad_y.numpy(), padding, grad_start, parts.numpy())
    return parts.sum(0)[:, :kernel].permute(2, 0, 1).unsqueeze(1).contiguous()


def depthwise_weight_grad(x: Tensor, grad_y: Tensor, kernel: int, padding: int) -> Tensor:
    """Weight gradient (C, 1, *(kernel,) * D) of :func:`depthwise_forward` for the output
    gradient ``grad_y`` (N, C, *L_out); no autograd."""
    x_l = _to_layout(x, padding, kernel)
    return _weight_grad(x_l, _to_layout(grad_y.to(x.dtype)), kernel, padding)


class DirectDepthwise(torch.autograd.Function):
    """Stride-1 depthwise convolution with symmetric zero padding, all three passes by the
    kernels: forward, input gradient (the forward of ``grad_y`` with the flipped kernel and
    padding ``K - 1 - padding``) and weight gradient. float32 / float64 CPU tensors, D = 1 or 2.
    The input is copied once into the kernels' layout (2-D: padded along W) and kept for the
    weight gradient; ``grad_y`` is copied once, padded for the input gradient, and read by the
    weight gradient from the same copy.

    Double backward (``create_graph=True``): the backward pass is then torch's differentiable
    convolution gradient (the kernels have no derivative of their own), so higher derivatives
    are torch's.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, x: Tensor, weight: Tensor, padding: int
    ) -> Tensor:
        x_l = _to_layout(x, padding, weight.shape[-1])
        ctx.save_for_backward(x, x_l, weight)
        ctx.padding = padding
        return _forward_in_layout(x_l, weight, padding)

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
        back_pad = size - 1 - padding
        g_l = _to_layout(
            grad_y.to(x_l.dtype), *((back_pad, size) if ctx.needs_input_grad[0] else ())
        )
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            flipped = _taps(weight.flip(tuple(range(2, weight.dim()))).to(x_l.dtype))
            grad_x = _from_layout(_correlate(g_l, flipped, back_pad))
        if ctx.needs_input_grad[1]:
            start = back_pad if ctx.needs_input_grad[0] and x.dim() == 4 else 0
            grad_w = _weight_grad(x_l, g_l, size, padding, start).to(weight.dtype)
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
