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
  outer product of its two profiles; entries below :func:`flush_threshold` (the square root of the
  smallest normal float32) are flushed to zero in the value only (the gradient passes through as
  if unflushed, so all-zero weights still learn), as in the torch path.
* ``'v1'``: per tap, per axis the two linear-interpolation corners ``(1 - f, f)`` at
  ``floor(p)``, ``floor(p) + 1`` (corners outside the window count zero, and do not enter the
  normalizer); the tap adds ``w / (n_y n_x + 1e-7)`` times the corner products. At an integer
  position the fraction has zero gradient (the torch path's subgradient choice).

A NaN position or spread makes its pair's whole kernel NaN (and that tap's gradients NaN), so it
is not hidden by the clamp; the torch path gives NaN too (in the entries the tap reaches).

Positions are clamped to the window (zero gradient outside, as ``torch.clamp``); the spread's
gradient through ``|SIG|`` is ``sign(SIG)``. Arithmetic runs in float64 and is rounded to the
input dtype once. Equal to the torch path in values and gradients up
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

from convsuite.core_ops.layers.dcls import NORM_EPS, SIGMA_FLOOR, _torch_kernel, flush_threshold

__all__ = ["RenderDCLS"]


@numba.njit(cache=True)
def _gauss_profile(
    p: float, sig: float, half: int, floor: float, prof: np.ndarray, k: int
) -> tuple[float, float, float, float]:
    """Fill ``prof[:, k]`` with the Gaussian profile of one tap on one axis of ``len(prof)``.

    From the grid point nearest the centre outwards, each entry is the previous times a ratio
    that itself changes by the factor ``exp(-1 / s^2)`` per step (3 exponentials instead of one
    per entry); entries below ``floor`` (the dtype's smallest normal number, where the torch path
    holds subnormals that only slow it down) are zero. Returns (clamped position in window
    coordinates, 1 / spread, mass, clamp mask 0/1)."""
    size = prof.shape[0]
    inside = 1.0 if -half <= p <= half else 0.0
    pos = min(max(p, -half), half) + half
    inv_spread = 1.0 / (abs(sig) + SIGMA_FLOOR)
    inv2 = inv_spread * inv_spread
    step = math.exp(-inv2)
    centre = min(max(int(math.floor(pos + 0.5)), 0), size - 1)
    d = centre - pos
    value = math.exp(-0.5 * d * d * inv2)
    prof[centre, k] = value
    mass = value
    up = math.exp(-(d + 0.5) * inv2)  # prof[g + 1] / prof[g] at g = centre
    mass = _walk_out(prof, k, centre, size, 1, value, up, step, floor, mass)
    # prof[g - 1] / prof[g] at g = centre: exp((d - 0.5) / s^2)
    mass = _walk_out(prof, k, centre, -1, -1, value, step / up, step, floor, mass)
    return pos, inv_spread, mass, inside


@numba.njit(cache=True, inline="always")
def _walk_out(
    prof: np.ndarray,
    k: int,
    centre: int,
    stop: int,
    stride: int,
    value: float,
    ratio: float,
    step: float,
    floor: float,
    mass: float,
) -> float:
    """Fill ``prof[g, k]`` for g from ``centre + stride`` to ``stop`` (exclusive) by the ratio
    recurrence of :func:`_gauss_profile` from the centre's ``value``; returns ``mass`` plus their
    sum, added in that order."""
    for g in range(centre + stride, stop, stride):
        value *= ratio
        ratio *= step
        if value < floor:
            value = 0.0
        prof[g, k] = value
        mass += value
    return mass


@numba.njit(cache=True)
def _gauss_tap_profiles(
    w: np.ndarray,
    p: np.ndarray,
    sig: np.ndarray,
    m: int,
    floor: float,
    prof_y: np.ndarray,
    prof_x: np.ndarray,
    state: np.ndarray,
) -> None:
    """Profiles of every tap of pair ``m`` into ``prof_y`` (H, K) and ``prof_x`` (W, K); per tap
    ``state[k]`` = (coef, denominator, mass_y, mass_x, pos_y, pos_x, 1/spread_y, 1/spread_x,
    inside_y, inside_x)."""
    half_y, half_x = prof_y.shape[0] // 2, prof_x.shape[0] // 2
    for k in range(w.shape[1]):
        pos_y, inv_y, mass_y, in_y = _gauss_profile(
            p[1, m, k], sig[1, m, k], half_y, floor, prof_y, k
        )
        pos_x, inv_x, mass_x, in_x = _gauss_profile(
            p[0, m, k], sig[0, m, k], half_x, floor, prof_x, k
        )
        denom = mass_y * mass_x + NORM_EPS
        st = state[k]
        st[0], st[1], st[2], st[3], st[4] = w[m, k] / denom, denom, mass_y, mass_x, pos_y
        st[5], st[6], st[7], st[8], st[9] = pos_x, inv_y, inv_x, in_y, in_x


@numba.njit(cache=True)
def _pair_has_nan(p: np.ndarray, sig: np.ndarray, m: int) -> bool:
    """Whether any tap of pair ``m`` has a NaN position or spread (``sig`` may have no taps)."""
    for k in range(p.shape[2]):
        if math.isnan(p[0, m, k]) or math.isnan(p[1, m, k]):
            return True
    for k in range(sig.shape[2]):
        if math.isnan(sig[0, m, k]) or math.isnan(sig[1, m, k]):
            return True
    return False


@numba.njit(cache=True)
def _gauss_forward(
    w: np.ndarray,
    p: np.ndarray,
    sig: np.ndarray,
    tiny: float,
    flush: float,
    window: tuple[int, int],
    start: tuple[int, int],
    out: np.ndarray,
) -> None:
    """out (M, h, w) = the region from ``start`` (y, x) of the Gaussian DCLS kernels (M, *window)
    of taps w (M, K), p and sig (2, M, K); p[0] moves along x, p[1] along y. Profile entries
    below ``tiny`` are zero, kernel entries below ``flush`` are flushed to zero."""
    pairs, taps = w.shape
    height, width = out.shape[1], out.shape[2]
    prof_y = np.empty((window[0], taps))
    prof_x = np.empty((window[1], taps))
    state = np.empty((taps, 10))
    acc = np.empty((height, width))
    rows = np.empty((taps, width))  # prof_x transposed: the inner loop runs along x
    for m in range(pairs):
        if _pair_has_nan(p, sig, m):
            out[m] = np.nan
            continue
        _gauss_tap_profiles(w, p, sig, m, tiny, prof_y, prof_x, state)
        for gx in range(width):
            for k in range(taps):
                rows[k, gx] = prof_x[start[1] + gx, k]
        acc[:] = 0.0
        for gy in range(height):
            for k in range(taps):
                a = state[k, 0] * prof_y[start[0] + gy, k]
                for gx in range(width):
                    acc[gy, gx] += a * rows[k, gx]
        for gy in range(height):
            for gx in range(width):
                value = acc[gy, gx]
                out[m, gy, gx] = 0.0 if abs(value) < flush else value


@numba.njit(cache=True)
def _profile_grads(
    dprof: np.ndarray, prof: np.ndarray, k: int, pos: float, inv_spread: float
) -> tuple[float, float]:
    """(d/d position, d/d spread) of tap ``k``'s Gaussian profile ``prof[:, k]`` given the
    gradient ``dprof`` on it."""
    d_pos = 0.0
    d_spread = 0.0
    for g in range(prof.shape[0]):
        u = (g - pos) * inv_spread
        t = dprof[g] * prof[g, k] * u * inv_spread
        d_pos += t
        d_spread += t * u
    return d_pos, d_spread


@numba.njit(cache=True)
def _gauss_backward(
    w: np.ndarray,
    p: np.ndarray,
    sig: np.ndarray,
    grad: np.ndarray,
    tiny: float,
    window: tuple[int, int],
    start: tuple[int, int],
    geometry: bool,
    gw: np.ndarray,
    gp: np.ndarray,
    gsig: np.ndarray,
) -> None:
    """Gradients of :func:`_gauss_forward` for the gradient ``grad`` (M, h, w) of its output
    region, as if no entry were flushed (the flush is the forward value's only); position and
    spread gradients only when ``geometry``. The profiles are evaluated again (cheaper than
    keeping them: megabytes of fresh memory per layer and call)."""
    pairs, taps = w.shape
    height, width = window
    prof_y = np.empty((height, taps))
    prof_x = np.empty((width, taps))
    state = np.empty((taps, 10))
    by_y = np.empty((height, taps))  # sum_x G[y, x] prof_x[x, k] (G zero outside the region)
    by_x = np.empty((width, taps))  # sum_y G[y, x] prof_y[y, k]
    d_coef = np.empty(taps)
    dprof_y = np.empty(height)
    dprof_x = np.empty(width)
    for m in range(pairs):
        if _pair_has_nan(p, sig, m):
            gw[m] = np.nan
            gp[:, m] = np.nan
            gsig[:, m] = np.nan
            continue
        _gauss_tap_profiles(w, p, sig, m, tiny, prof_y, prof_x, state)
        by_y[:] = 0.0
        by_x[:] = 0.0
        for ry in range(grad.shape[1]):
            gy = start[0] + ry
            for rx in range(grad.shape[2]):
                gx = start[1] + rx
                value = grad[m, ry, rx]
                if value == 0.0:
                    continue
                for k in range(taps):
                    by_y[gy, k] += value * prof_x[gx, k]
                    by_x[gx, k] += value * prof_y[gy, k]
        d_coef[:] = 0.0
        for gy in range(height):
            for k in range(taps):
                d_coef[k] += prof_y[gy, k] * by_y[gy, k]
        for k in range(taps):
            coef, denom, mass_y, mass_x = state[k, 0], state[k, 1], state[k, 2], state[k, 3]
            gw[m, k] = d_coef[k] / denom
            if not geometry:
                continue
            d_denom = -d_coef[k] * coef / denom
            # profile gradients: coef * (G prof_x) for y, coef * (G^T prof_y) for x, plus the mass
            for gy in range(height):
                dprof_y[gy] = coef * by_y[gy, k] + d_denom * mass_x
            for gx in range(width):
                dprof_x[gx] = coef * by_x[gx, k] + d_denom * mass_y
            d_pos_y, d_spread_y = _profile_grads(dprof_y, prof_y, k, state[k, 4], state[k, 6])
            d_pos_x, d_spread_x = _profile_grads(dprof_x, prof_x, k, state[k, 5], state[k, 7])
            gp[1, m, k] = d_pos_y * state[k, 8]
            gp[0, m, k] = d_pos_x * state[k, 9]
            gsig[1, m, k] = d_spread_y * np.sign(sig[1, m, k])
            gsig[0, m, k] = d_spread_x * np.sign(sig[0, m, k])


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
def _region_value(grad: np.ndarray, m: int, ry: int, rx: int) -> float:
    """``grad[m, ry, rx]``, zero outside the region (the window's other entries)."""
    if 0 <= ry < grad.shape[1] and 0 <= rx < grad.shape[2]:
        return grad[m, ry, rx]
    return 0.0


@numba.njit(cache=True)
def _bilinear_forward(
    w: np.ndarray, p: np.ndarray, window: tuple[int, int], start: tuple[int, int], out: np.ndarray
) -> None:
    """out (M, h, w) = the region from ``start`` (y, x) of the bilinear DCLS kernels (M, *window)
    of taps w (M, K) at positions p (2, M, K)."""
    pairs, taps = w.shape
    height, width = window
    no_sigma = np.empty((2, pairs, 0))
    for m in range(pairs):
        acc = out[m]
        if _pair_has_nan(p, no_sigma, m):
            acc[:] = np.nan
            continue
        acc[:] = 0.0
        for k in range(taps):
            ly, wy0, wy1, ny, _ = _corners(p[1, m, k], height // 2, height)
            lx, wx0, wx1, nx, _ = _corners(p[0, m, k], width // 2, width)
            coef = w[m, k] / (ny * nx + NORM_EPS)
            for dy in range(2):
                wy = wy0 if dy == 0 else wy1
                iy = ly + dy - start[0]
                if wy == 0.0 or iy < 0 or iy >= out.shape[1]:
                    continue
                for dx in range(2):
                    wx = wx0 if dx == 0 else wx1
                    ix = lx + dx - start[1]
                    if wx == 0.0 or ix < 0 or ix >= out.shape[2]:
                        continue
                    acc[iy, ix] += coef * wy * wx


@numba.njit(cache=True)
def _bilinear_backward(
    w: np.ndarray,
    p: np.ndarray,
    grad: np.ndarray,
    window: tuple[int, int],
    start: tuple[int, int],
    gw: np.ndarray,
    gp: np.ndarray,
) -> None:
    """Gradients of :func:`_bilinear_forward` for the gradient ``grad`` (M, h, w) of its output
    region."""
    pairs, taps = w.shape
    height, width = window
    no_sigma = np.empty((2, pairs, 0))
    for m in range(pairs):
        if _pair_has_nan(p, no_sigma, m):
            gw[m] = np.nan
            gp[:, m] = np.nan
            continue
        for k in range(taps):
            ly, wy0, wy1, ny, dfy = _corners(p[1, m, k], height // 2, height)
            lx, wx0, wx1, nx, dfx = _corners(p[0, m, k], width // 2, width)
            valid_y0 = 0 <= ly < height
            valid_y1 = 0 <= ly + 1 < height
            valid_x0 = 0 <= lx < width
            valid_x1 = 0 <= lx + 1 < width
            g00 = _region_value(grad, m, ly - start[0], lx - start[1])
            g01 = _region_value(grad, m, ly - start[0], lx + 1 - start[1])
            g10 = _region_value(grad, m, ly + 1 - start[0], lx - start[1])
            g11 = _region_value(grad, m, ly + 1 - start[0], lx + 1 - start[1])
            denom = ny * nx + NORM_EPS
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


def _flat(t: Tensor, lead: int) -> np.ndarray:
    """``t`` detached, contiguous, with its (C_out, C_in/groups) axes merged, as a numpy view."""
    t = t.detach().contiguous()
    return t.reshape(*t.shape[:lead], -1, t.shape[-1]).numpy()


class RenderDCLS(torch.autograd.Function):
    """Dense 2-D DCLS kernel from taps ``weight`` (C_out, C_in/groups, K), ``positions`` and,
    for ``'gauss'``, ``sigma`` (2, C_out, C_in/groups, K): the numba kernels above, forward and
    backward. Apply as ``RenderDCLS.apply(weight, positions, sigma, window, version, region)``:
    ``region`` ((y0, y1), (x0, x1)) selects the rendered part of the ``window`` (a
    convolution on a small map only reaches the central taps), giving (C_out, C_in/groups,
    y1 - y0, x1 - x0), equal to the full kernel's ``[..., y0:y1, x0:x1]``. Double backward runs
    the torch rendering, ``convsuite.core_ops.layers.dcls._torch_kernel`` (not
    ``construct_kernel``, which would come back here)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        weight: Tensor,
        positions: Tensor,
        sigma: Tensor | None,
        window: tuple[int, int],
        version: str,
        region: tuple[tuple[int, int], tuple[int, int]],
    ) -> Tensor:
        c_out, c_in, _ = weight.shape
        start = (region[0][0], region[1][0])
        shape = (region[0][1] - start[0], region[1][1] - start[1])
        out = torch.empty(c_out * c_in, *shape, dtype=weight.dtype, device="cpu")
        w, p = _flat(weight, 0), _flat(positions, 1)
        if version == "gauss":
            tiny = float(torch.finfo(weight.dtype).tiny)
            flush = flush_threshold(weight.dtype)
            _gauss_forward(w, p, _flat(sigma, 1), tiny, flush, window, start, out.numpy())
        else:
            _bilinear_forward(w, p, window, start, out.numpy())
        kernel = out.reshape(c_out, c_in, *shape)
        ctx.save_for_backward(weight, positions, sigma)
        ctx.window, ctx.version, ctx.region = window, version, region
        return kernel

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, ...]:
        weight, positions, sigma = ctx.saved_tensors
        (y0, y1), (x0, x1) = ctx.region
        needs = ctx.needs_input_grad[:3]
        if not any(needs):
            return (None,) * 6
        if torch.is_grad_enabled():  # create_graph=True: the torch path's differentiable backward
            inputs = (weight, positions, sigma)
            needed = [t for t, need in zip(inputs, ctx.needs_input_grad[:3], strict=True) if need]
            with torch.enable_grad():
                rendered = _torch_kernel(weight, positions, ctx.window, ctx.version, sigma)
                rendered = rendered[..., y0:y1, x0:x1]
                grads = iter(torch.autograd.grad(rendered, needed, grad, create_graph=True))
            return (
                *(next(grads) if need else None for need in ctx.needs_input_grad[:3]),
                *(None,) * 3,
            )
        w, p = _flat(weight, 0), _flat(positions, 1)
        g = _flat(grad.to(weight.dtype).flatten(2), 0).reshape(-1, y1 - y0, x1 - x0)
        gw, gp = np.empty_like(w), np.empty_like(p)
        gsig = None
        start = (y0, x0)
        if ctx.version == "gauss":
            s = _flat(sigma, 1)
            gs = np.empty_like(s)
            tiny = float(torch.finfo(weight.dtype).tiny)
            geometry = needs[1] or needs[2]
            _gauss_backward(w, p, s, g, tiny, ctx.window, start, geometry, gw, gp, gs)
            gsig = torch.from_numpy(gs).reshape(sigma.shape) if needs[2] else None
        else:
            _bilinear_backward(w, p, g, ctx.window, start, gw, gp)
        return (
            torch.from_numpy(gw).reshape(weight.shape) if needs[0] else None,
            torch.from_numpy(gp).reshape(positions.shape) if needs[1] else None,
            gsig,
            *(None,) * 3,
        )
