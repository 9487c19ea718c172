"""Fused DCLS kernel rendering for 2-D windows (numba): forward and backward in one call each.

:func:`~convsuite.core_ops.layers.dcls.construct_kernel` written with torch ops runs ~20 small
autograd operations per layer and call (profiles, masses, outer products, a batched matrix product
for ``'gauss'``; corner weights and a scatter for ``'v1'``), and as many again backward; in a
ConvNeXt-atto training step with DCLS mixers those small ops cost more than the convolutions.
Here each rendering is one serial compiled pass over the taps, and its backward another, in the
same formulas (Khalfaoui-Hassani et al., ICLR 2023 for the bilinear ``'v1'``; arXiv 2306.00817
for the Gaussian ``'gauss'``; see :mod:`convsuite.core_ops.layers.dcls`):

* ``'gauss'``: per tap, per axis a profile ``exp(-((g - p) / s)^2 / 2)`` over the window's grid
  ``g``, ``s = |SIG| + 0.27``, its mass; the tap adds ``w / (mass_y mass_x + 1e-7)`` times the
  outer product of its two profiles; entries below the smallest normal float are flushed to zero
  (zero gradient there), as in the torch path.
* ``'v1'``: per tap, per axis the two linear-interpolation corners ``(1 - f, f)`` at
  ``floor(p)``, ``floor(p) + 1`` (corners outside the window count zero, and do not enter the
  normalizer); the tap adds ``w / (n_y n_x + 1e-7)`` times the corner products. At an integer
  position the fraction has zero gradient (the torch path's subgradient choice).

Positions are clamped to the window (zero gradient outside, as ``torch.clamp``); the spread's
gradient through ``|SIG|`` is ``sign(SIG)``. Equal to the torch path in values and gradients up
to rounding (``tests/test_dcls_kernels.py``: float32 and float64, gradcheck). Serial loops: one
layer's rendering is ~0.1-3 MFLOP, and a serial kernel leaves numba's thread pool (and its
fork() restriction) out of it. Double backward (``create_graph=True``) goes through the torch
path. numba compiles each kernel on first call (cached on disk).
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

__all__ = ["RenderDCLS", "fused_applies"]

_SIGMA_FLOOR = 0.27
_NORM_EPS = 1e-7


@numba.njit(cache=True)
def _gauss_profiles(
    p: float, sig: float, half: int, size: int, prof: np.ndarray
) -> tuple[float, float, float, float]:
    """Fill ``prof[:size]`` with the Gaussian profile of one tap on one axis.

    Returns (clamped position in window coordinates, spread, mass, clamp mask 0/1)."""
    inside = 1.0 if -half <= p <= half else 0.0
    pos = min(max(p, -half), half) + half
    spread = abs(sig) + _SIGMA_FLOOR
    mass = 0.0
    for g in range(size):
        u = (g - pos) / spread
        value = math.exp(-0.5 * u * u)
        prof[g] = value
        mass += value
    return pos, spread, mass, inside


@numba.njit(cache=True)
def _gauss_forward(
    w: np.ndarray, p: np.ndarray, sig: np.ndarray, tiny: float, out: np.ndarray
) -> None:
    """out (M, H, W) = Gaussian DCLS kernels of taps w (M, K), p and sig (2, M, K); p[0] moves
    along W (x), p[1] along H (y)."""
    pairs, taps = w.shape
    height, width = out.shape[1], out.shape[2]
    prof_y = np.empty(height)
    prof_x = np.empty(width)
    for m in range(pairs):
        acc = out[m]
        acc[:] = 0.0
        for k in range(taps):
            _, _, mass_y, _ = _gauss_profiles(p[1, m, k], sig[1, m, k], height // 2, height, prof_y)
            _, _, mass_x, _ = _gauss_profiles(p[0, m, k], sig[0, m, k], width // 2, width, prof_x)
            coef = w[m, k] / (mass_y * mass_x + _NORM_EPS)
            for gy in range(height):
                a = coef * prof_y[gy]
                row = acc[gy]
                for gx in range(width):
                    row[gx] += a * prof_x[gx]
        for gy in range(height):
            for gx in range(width):
                if abs(acc[gy, gx]) < tiny:
                    acc[gy, gx] = 0.0


@numba.njit(cache=True)
def _profile_grads(
    dprof: np.ndarray, prof: np.ndarray, pos: float, spread: float, size: int
) -> tuple[float, float]:
    """(d/d position, d/d spread) of a Gaussian profile given the gradient ``dprof`` on it."""
    d_pos = 0.0
    d_spread = 0.0
    for g in range(size):
        u = (g - pos) / spread
        t = dprof[g] * prof[g] * u / spread
        d_pos += t
        d_spread += t * u
    return d_pos, d_spread


@numba.njit(cache=True)
def _gauss_backward(
    w: np.ndarray,
    p: np.ndarray,
    sig: np.ndarray,
    grad: np.ndarray,
    kernel: np.ndarray,
    tiny: float,
    gw: np.ndarray,
    gp: np.ndarray,
    gsig: np.ndarray,
) -> None:
    """Gradients of :func:`_gauss_forward` for the kernel gradient ``grad`` (M, H, W); ``kernel``
    is the forward's output (flushed entries pass no gradient)."""
    pairs, taps = w.shape
    height, width = grad.shape[1], grad.shape[2]
    prof_y = np.empty(height)
    prof_x = np.empty(width)
    col = np.empty(width)  # sum_y prof_y[y] G[y, x]
    row_sum = np.empty(height)  # sum_x G[y, x] prof_x[x]
    g_m = np.empty((height, width))
    for m in range(pairs):
        for gy in range(height):
            for gx in range(width):
                g_m[gy, gx] = 0.0 if abs(kernel[m, gy, gx]) < tiny else grad[m, gy, gx]
        for k in range(taps):
            sig_y, sig_x = sig[1, m, k], sig[0, m, k]
            pos_y, spread_y, mass_y, in_y = _gauss_profiles(
                p[1, m, k], sig_y, height // 2, height, prof_y
            )
            pos_x, spread_x, mass_x, in_x = _gauss_profiles(
                p[0, m, k], sig_x, width // 2, width, prof_x
            )
            denom = mass_y * mass_x + _NORM_EPS
            coef = w[m, k] / denom
            col[:] = 0.0
            for gy in range(height):
                py = prof_y[gy]
                s = 0.0
                for gx in range(width):
                    value = g_m[gy, gx]
                    col[gx] += py * value
                    s += value * prof_x[gx]
                row_sum[gy] = s
            d_coef = 0.0
            for gx in range(width):
                d_coef += col[gx] * prof_x[gx]
            gw[m, k] = d_coef / denom
            d_denom = -d_coef * coef / denom
            # profile gradients: coef * (G prof_x) for y, coef * (G^T prof_y) for x, plus the mass
            for gy in range(height):
                row_sum[gy] = coef * row_sum[gy] + d_denom * mass_x
            for gx in range(width):
                col[gx] = coef * col[gx] + d_denom * mass_y
            d_pos_y, d_spread_y = _profile_grads(row_sum, prof_y, pos_y, spread_y, height)
            d_pos_x, d_spread_x = _profile_grads(col, prof_x, pos_x, spread_x, width)
            gp[1, m, k] = d_pos_y * in_y
            gp[0, m, k] = d_pos_x * in_x
            gsig[1, m, k] = d_spread_y * np.sign(sig_y)
            gsig[0, m, k] = d_spread_x * np.sign(sig_x)


@numba.njit(cache=True)
def _corners(p: float, half: int, size: int) -> tuple[int, float, float, float, float]:
    """Bilinear corners of one tap on one axis: (low index, weight at low, weight at low + 1
    (zero outside the window), normalizer, d fraction / d position: the clamp mask, zero at
    integer positions)."""
    inside = 1.0 if -half <= p <= half else 0.0
    pos = min(max(p, -half), half) + half
    low = math.floor(pos)
    frac = pos - low
    lo = int(low)
    w_lo = (1.0 - frac) if 0 <= lo < size else 0.0
    w_hi = frac if 0 <= lo + 1 < size else 0.0
    d_frac = inside if frac != 0.0 else 0.0
    return lo, w_lo, w_hi, w_lo + w_hi, d_frac


@numba.njit(cache=True)
def _bilinear_forward(w: np.ndarray, p: np.ndarray, out: np.ndarray) -> None:
    """out (M, H, W) = bilinear DCLS kernels of taps w (M, K) at positions p (2, M, K)."""
    pairs, taps = w.shape
    height, width = out.shape[1], out.shape[2]
    for m in range(pairs):
        acc = out[m]
        acc[:] = 0.0
        for k in range(taps):
            ly, wy0, wy1, ny, _ = _corners(p[1, m, k], height // 2, height)
            lx, wx0, wx1, nx, _ = _corners(p[0, m, k], width // 2, width)
            coef = w[m, k] / (ny * nx + _NORM_EPS)
            for dy in range(2):
                wy = wy0 if dy == 0 else wy1
                iy = ly + dy
                if wy == 0.0 or iy < 0 or iy >= height:
                    continue
                for dx in range(2):
                    wx = wx0 if dx == 0 else wx1
                    ix = lx + dx
                    if wx == 0.0 or ix < 0 or ix >= width:
                        continue
                    acc[iy, ix] += coef * wy * wx


@numba.njit(cache=True)
def _bilinear_backward(
    w: np.ndarray, p: np.ndarray, grad: np.ndarray, gw: np.ndarray, gp: np.ndarray
) -> None:
    """Gradients of :func:`_bilinear_forward` for the kernel gradient ``grad`` (M, H, W)."""
    pairs, taps = w.shape
    height, width = grad.shape[1], grad.shape[2]
    for m in range(pairs):
        for k in range(taps):
            ly, wy0, wy1, ny, dfy = _corners(p[1, m, k], height // 2, height)
            lx, wx0, wx1, nx, dfx = _corners(p[0, m, k], width // 2, width)
            valid_y0 = 0 <= ly < height
            valid_y1 = 0 <= ly + 1 < height
            valid_x0 = 0 <= lx < width
            valid_x1 = 0 <= lx + 1 < width
            g00 = grad[m, ly, lx] if valid_y0 and valid_x0 else 0.0
            g01 = grad[m, ly, lx + 1] if valid_y0 and valid_x1 else 0.0
            g10 = grad[m, ly + 1, lx] if valid_y1 and valid_x0 else 0.0
            g11 = grad[m, ly + 1, lx + 1] if valid_y1 and valid_x1 else 0.0
            denom = ny * nx + _NORM_EPS
            coef = w[m, k] / denom
            # d loss / d (corner weight) per axis, and d loss / d coef
            d_wy0 = coef * (g00 * wx0 + g01 * wx1)
            d_wy1 = coef * (g10 * wx0 + g11 * wx1)
            d_wx0 = coef * (g00 * wy0 + g10 * wy1)
            d_wx1 = coef * (g01 * wy0 + g11 * wy1)
            d_coef = wy0 * (g00 * wx0 + g01 * wx1) + wy1 * (g10 * wx0 + g11 * wx1)
            gw[m, k] = d_coef / denom
            d_denom = -d_coef * coef / denom
            d_wy0 += d_denom * nx
            d_wy1 += d_denom * nx
            d_wx0 += d_denom * ny
            d_wx1 += d_denom * ny
            # weights (1 - f) * valid_low, f * valid_high
            d_fy = (d_wy1 if valid_y1 else 0.0) - (d_wy0 if valid_y0 else 0.0)
            d_fx = (d_wx1 if valid_x1 else 0.0) - (d_wx0 if valid_x0 else 0.0)
            gp[1, m, k] = d_fy * dfy
            gp[0, m, k] = d_fx * dfx


def fused_applies(weight: Tensor, positions: Tensor, window: tuple[int, ...]) -> bool:
    """Whether :class:`RenderDCLS` renders these taps: a 2-D window, float32/float64 CPU
    tensors, no autocast (the torch path's matrix product runs in bf16 there)."""
    return (
        len(window) == 2
        and weight.device.type == "cpu"
        and positions.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.float64)
        and positions.dtype == weight.dtype
        and not torch.is_autocast_enabled("cpu")
    )


def _flat(t: Tensor, lead: int) -> np.ndarray:
    """``t`` detached, contiguous, with its (C_out, C_in/groups) axes merged, as a numpy view."""
    t = t.detach().contiguous()
    return t.reshape(*t.shape[:lead], -1, t.shape[-1]).numpy()


class RenderDCLS(torch.autograd.Function):
    """Dense 2-D DCLS kernel (C_out, C_in/groups, H, W) from taps ``weight`` (C_out, C_in/groups,
    K), ``positions`` and, for ``'gauss'``, ``sigma`` (2, C_out, C_in/groups, K): the numba
    kernels above, forward and backward. Apply as ``RenderDCLS.apply(weight, positions, sigma,
    window, version, reference)`` where ``reference`` is the torch rendering (same signature as
    :func:`~convsuite.core_ops.layers.dcls.construct_kernel`), used for double backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        weight: Tensor,
        positions: Tensor,
        sigma: Tensor | None,
        window: tuple[int, int],
        version: str,
        reference,
    ) -> Tensor:
        c_out, c_in, _ = weight.shape
        out = torch.empty(c_out * c_in, *window, dtype=weight.dtype)
        w, p = _flat(weight, 0), _flat(positions, 1)
        if version == "gauss":
            tiny = float(torch.finfo(weight.dtype).tiny)
            _gauss_forward(w, p, _flat(sigma, 1), tiny, out.numpy())
        else:
            _bilinear_forward(w, p, out.numpy())
        kernel = out.reshape(c_out, c_in, *window)
        ctx.save_for_backward(weight, positions, sigma, kernel)
        ctx.window, ctx.version, ctx.reference = window, version, reference
        return kernel

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, ...]:
        weight, positions, sigma, kernel = ctx.saved_tensors
        if torch.is_grad_enabled():  # create_graph=True: the torch path's differentiable backward
            inputs = (weight, positions, sigma)
            needed = [t for t, need in zip(inputs, ctx.needs_input_grad[:3], strict=True) if need]
            with torch.enable_grad():
                rendered = ctx.reference(weight, positions, ctx.window, ctx.version, sigma)
                grads = iter(torch.autograd.grad(rendered, needed, grad, create_graph=True))
            return (
                *(next(grads) if need else None for need in ctx.needs_input_grad[:3]),
                None,
                None,
                None,
            )
        w, p = _flat(weight, 0), _flat(positions, 1)
        g = _flat(grad.to(weight.dtype).flatten(2), 0).reshape(-1, *ctx.window)
        gw, gp = np.empty_like(w), np.empty_like(p)
        gsig = None
        if ctx.version == "gauss":
            s = _flat(sigma, 1)
            gs = np.empty_like(s)
            tiny = float(torch.finfo(weight.dtype).tiny)
            k = kernel.reshape(-1, *ctx.window).numpy()
            _gauss_backward(w, p, s, g, k, tiny, gw, gp, gs)
            gsig = torch.from_numpy(gs).reshape(sigma.shape)
        else:
            _bilinear_backward(w, p, g, gw, gp)
        return (
            torch.from_numpy(gw).reshape(weight.shape),
            torch.from_numpy(gp).reshape(positions.shape),
            gsig,
            None,
            None,
            None,
        )
