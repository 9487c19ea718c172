"""The observed map's power spectrum, measured from its observed pixels (MASTER), and the prior
the pipeline builds from it.

Why. The rim's local Wiener filter and the realization's prior draw need the spectrum of the map
being inpainted: beam, pixel window, noise and cosmology all shape it. A prior fixed at training
time (LCDM, a 2-pixel beam, 1 muK arcmin) put 1.2-1.4x the truth's power at ell > 250 into the
holes of a map with a 1 degree beam. So by default the pipeline measures the total spectrum (signal
x beam^2 x pixel window^2, plus noise: everything the map holds) from the map itself.

How (Hivon et al. 2002, "MASTER", ApJ 567, 2):

* The mask is apodized: observed pixels within :data:`APODIZATION_STEPS` neighbour steps of a hole
  get a weight ``sin^2(pi d / (2 (steps + 1)))`` (C2-like taper in steps, ``d`` the step distance),
  so the window's spectrum falls fast and little power leaks from the peak into the damping tail.
* Pseudo-C_ell: ``anafast`` of the weighted map (monopole and dipole of the observed pixels
  removed first). Its expectation is ``M C``, with the mode-coupling matrix
  ``M_l1l2 = (2 l2 + 1) / (4 pi) sum_l3 (2 l3 + 1) W_l3 (l1 l2 l3; 0 0 0)^2``, ``W`` the weight
  map's spectrum. The Wigner 3j symbols come from their two-term recursion in ``l3`` (below),
  summed pair by pair in one compiled loop (numba).
* Binned (:data:`BIN_WIDTH` ells from ell = 2, ``D_ell = l (l + 1) C_ell / 2 pi`` flat within a
  bin) and inverted: ``C_b = (P M Q)^-1 P pseudo``; smoothed back to every ell by interpolating
  ``log D_b`` linearly between bin centres.
* Prewhitened passes (:func:`_prewhitened`, ell >= nside / 2, blended in up to ell = nside):
  the map, holes filled by diffusion, divided in harmonic space by the square root of the
  estimate so far (smoothed), measured again with a wider taper, and multiplied back; twice,
  the second pass whitened by the first's result. Where a beam takes the sky below the noise,
  the one pass was off by the leakage from the low ells (60' at Nside 256: 19% at ell 256-511,
  70% at 512-767); prewhitened once 3% and 5% (median per 10-ell bin, three skies), but up to
  1.8x in single bins, which the second, smoothed pass takes to 16% (:func:`_prewhitened`).
* Above :data:`MAX_COUPLED_ELL` (maps of Nside > 256) the coupling is left out: the pseudo-C_ell
  over the weight's mean square (the kernel's width is far below the bins there). Maps above
  Nside 512 (:func:`_estimate_degraded`): MASTER as above on the map degraded to Nside 512 below
  ell = 256, and one full-resolution pseudo-C_ell over the weights' mean square (the wider taper
  of the whitened pass) above ell = 512, log-linear in between, so the beam's damping tail and
  the noise floor are measured up to 3 Nside - 1.

No pixel window is applied anywhere (``healpy.pixwin`` downloads its tables): the measured spectrum
holds the map's own pixel window, and the simulator's skies have none.

Overrides: a spectrum file (:func:`read_cl`: healpy ``write_cl`` FITS or two text columns
``ell C_ell``), or LCDM with a given beam and noise (:class:`~convsuite.cosmo.data.SkyPrior`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import healpy as hp
import numba
import numpy as np
from scipy.ndimage import median_filter
from scipy.spatial import cKDTree
from scipy.special import gammaln

from convsuite.core_ops.io import InputError
from convsuite.cosmo.baselines import diffusive_inpaint
from convsuite.cosmo.data import sht
from convsuite.cosmo.data.regrade import degrade_masked_mean, degrade_observed
from convsuite.cosmo.data.simulate import (
    DEFAULT_NOISE_UK_ARCMIN,
    SkyPrior,
    pixel_noise_sigma,
)
from convsuite.cosmo.local_wiener import covariance_function, hole_depth

__all__ = [
    "APODIZATION_STEPS",
    "BIN_WIDTH",
    "MAX_COUPLED_ELL",
    "MapPrior",
    "SpectrumEstimate",
    "apodized_weights",
    "bin_edges",
    "coupling_matrix",
    "estimate_spectrum",
    "given_prior",
    "measured_prior",
    "pixels_per_steradian",
    "read_cl",
    "spectrum_floor",
    "white_noise_cl",
    "wigner3j_squared_000",
]

APODIZATION_STEPS = 4
BIN_WIDTH = 10
MAX_COUPLED_ELL = 767  # 3 x 256 - 1: the coupling matrix costs ~ lmax^3 / 6 (0.25 s at 767)
_MAX_MEASURED_NSIDE = 512
_WHITENED_APODIZATION_STEPS = 16  # the prewhitened pass's taper (_prewhitened)
_WHITENED_FILL_SWEEPS = 30
_WHITENED_SHAPE_ELLS = 21  # the whitening shape's running median (_prewhitened)
_WHITENING_PASSES = 2  # each whitened by the one before (_prewhitened)
_DIPOLE_CHUNK = 1 << 22  # pixels a chunk in _without_dipole (one chunk up to Nside 512)
_FLOOR_WITHIN = 1.3  # the noise floor: the median of the estimate within this factor of its minimum
_CV_SAMPLES = 400  # pixels whose leave-one-out prediction measures the noise ...
_CV_MIN_SAMPLES = 50  # ... fewer whole discs than this: the floor is kept (logged)
_CV_RADIUS = 4.0  # ... from observed pixels within this many pixel sizes ...
_CV_DATA = 40  # ... the nearest this many of them
_CV_DECADES = 7  # noise variances tried: from the floor down by this many decades
_CV_LEVELS = 15  # ... on this many log-spaced levels (3.2x apart)
# the log-likelihood drop tolerated below the best level: a heuristic tolerance (1.92 is half the
# chi^2 1-dof 95% point, but the leave-one-out terms share pixels, so it is no calibrated interval)
_CV_TOLERANCE = 1.92
_LOG = logging.getLogger(__name__)


def wigner3j_squared_000(l1: np.ndarray, l2: np.ndarray, l3: np.ndarray) -> np.ndarray:
    """``(l1 l2 l3; 0 0 0)^2`` for integer arrays (broadcast), by the recursion of
    :func:`coupling_matrix` started at ``l3 = |l1 - l2|``: a reference for tests and small cases.
    Zero where the triangle rule or the parity (``l1 + l2 + l3`` even) fails."""
    l1, l2, l3 = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64) for a in (l1, l2, l3)))
    low, high = np.minimum(l1, l2), np.maximum(l1, l2)
    value = _start_value(low, high)
    steps = (l3 - (high - low)) // 2
    valid = (l3 >= high - low) & (l3 <= high + low) & ((l1 + l2 + l3) % 2 == 0)
    j = high.astype(np.float64)  # J = (l1 + l2 + l3) / 2 at l3 = high - low
    for k in range(int(steps.max(initial=0))):
        moving = k < steps
        value = np.where(moving, value * _ratio(j, low, high, k), value)
        j = j + moving
    return np.where(valid, value, 0.0)


def _start_value(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``(low high high - low; 0 0 0)^2`` (closed form, J = high):
    ``(2 high - 2 low)! (2 low)! / (2 high + 1)! x (high! / ((high - low)! low!))^2``."""
    return np.exp(
        gammaln(2 * (high - low) + 1)
        + gammaln(2 * low + 1)
        - gammaln(2 * high + 2)
        + 2 * (gammaln(high + 1) - gammaln(high - low + 1) - gammaln(low + 1))
    )


def _ratio(j: np.ndarray, low: np.ndarray, high: np.ndarray, k: int) -> np.ndarray:
    """``(l1 l2 l3 + 2; 000)^2 / (l1 l2 l3; 000)^2`` at ``J = (l1 + l2 + l3) / 2``:
    ``(2x + 1)(2y + 1) z (J + 1) / ((x + 1)(y + 1)(2z - 1)(2J + 3))``, x = J - l1, y = J - l2,
    z = J - l3 (from the closed form of the symbol; z = low - k at step k)."""
    x, y, z = j - low, j - high, low - k
    return (2 * x + 1) * (2 * y + 1) * z * (j + 1) / ((x + 1) * (y + 1) * (2 * z - 1) * (2 * j + 3))


def coupling_matrix(window_cl: np.ndarray, lmax: int) -> np.ndarray:
    """MASTER's mode-coupling matrix: ``<pseudo C_l1> = sum_l2 M[l1, l2] C_l2``.

    Args:
        window_cl: (>= 1,) the weight map's spectrum W_ell (``anafast`` of the weights); ells
            beyond its length count as 0.
        lmax: the largest l1 and l2.

    Returns:
        (lmax + 1, lmax + 1) float64. Full sky (``W_0 = 4 pi``, nothing else) gives the identity.

    The sum over l3 runs the recursion of :func:`wigner3j_squared_000` for every pair
    ``l1 <= l2`` (:func:`_coupling_sums`, compiled; the same sums in the same order as the
    recursion vectorised over the pairs in numpy it replaced, bit for bit, in 0.25 s instead of
    1.35 s at lmax 767, one thread, load 2.5), each stopping where its l3 leaves the triangle or
    W's range.
    """
    w = np.zeros(2 * lmax + 2)
    size = min(len(window_cl), w.size)
    w[:size] = (2 * np.arange(size) + 1) * np.asarray(window_cl[:size], float) / (4 * np.pi)
    low, high = np.triu_indices(lmax + 1)
    # _ratio factorised into tables: with x = gap + k, y = k, z = low - k, J = high + k it is
    # a(gap + k) b(k) c(low - k) d(high + k), b(k) = (2 k + 1) / (k + 1)
    n = np.arange(2 * lmax + 4, dtype=np.float64)
    a, d = (2 * n + 1) / (n + 1), (n + 1) / (2 * n + 3)
    c = n / (2 * n - 1)
    total = _coupling_sums(w, low, high, _start_value(low, high), size, a, c, d)
    symmetric = np.zeros((lmax + 1, lmax + 1))
    symmetric[low, high] = total
    symmetric[high, low] = total
    return symmetric * (2 * np.arange(lmax + 1) + 1)[None, :]


@numba.njit(cache=True)
def _coupling_sums(
    w: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    start: np.ndarray,
    size: int,
    a: np.ndarray,
    c: np.ndarray,
    d: np.ndarray,
) -> np.ndarray:
    """``sum_l3 w[l3] (low high l3; 0 0 0)^2`` for each pair (``low <= high``; ``start`` the
    symbol at ``l3 = high - low``), l3 stepping by 2 while ``l3 <= high + low`` and
    ``l3 < size`` (:func:`coupling_matrix`'s tables ``a``, ``c``, ``d``)."""
    total = np.zeros(low.size)
    for pair in range(low.size):
        lo, hi = low[pair], high[pair]
        gap = hi - lo  # l3 starts here
        value, summed = start[pair], 0.0
        for k in range(min(lo, (size - 1 - gap) // 2) + 1):  # l3 = gap + 2 k
            summed += w[gap + 2 * k] * value
            factor = a[gap + k] * d[hi + k]
            factor *= c[lo - k]
            value *= factor * ((2 * k + 1) / (k + 1))
        total[pair] = summed
    return total


def apodized_weights(observed: np.ndarray, steps: int = APODIZATION_STEPS) -> np.ndarray:
    """(12 nside^2,) float64 NESTED weights: 0 in holes, ``sin^2(pi d / (2 (steps + 1)))`` at
    ``d <= steps`` neighbour steps from the nearest hole, 1 beyond."""
    observed = np.asarray(observed, dtype=bool)
    distance = hole_depth(~observed, steps).astype(np.float64)  # steps from the holes
    return np.where(observed, np.sin(np.pi * distance / (2 * (steps + 1))) ** 2, 0.0)


def bin_edges(lmax: int, width: int = BIN_WIDTH) -> np.ndarray:
    """Bin edges from ell = 2 by ``width`` (the last bin ends at ``lmax + 1``)."""
    edges = np.arange(2, lmax + 2, width)
    return np.append(edges, lmax + 1) if edges[-1] != lmax + 1 else edges


@dataclass(frozen=True)
class SpectrumEstimate:
    """The measured total spectrum of a map.

    Attributes:
        cl: (3 nside,) C_ell in muK^2 for every ell (binned, smoothed; C_0 = C_1 = 0).
        ell_bins: (nbins,) bin centres.
        cl_bins: (nbins,) the binned, coupling-corrected estimate, muK^2.
        pseudo_cl: (3 nside,) the weighted map's ``anafast`` (before the correction).
    """

    cl: np.ndarray
    ell_bins: np.ndarray
    cl_bins: np.ndarray
    pseudo_cl: np.ndarray


def _binning(edges: np.ndarray, lmax: int) -> tuple[np.ndarray, np.ndarray]:
    """P (bins x ells): the mean of D_ell over a bin; Q (ells x bins): C_ell of a flat D_b."""
    ell = np.arange(lmax + 1)
    d_factor = ell * (ell + 1) / (2 * np.pi)
    p = np.zeros((edges.size - 1, lmax + 1))
    q = np.zeros((lmax + 1, edges.size - 1))
    for b, (start, stop) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        p[b, start:stop] = d_factor[start:stop] / (stop - start)
        q[start:stop, b] = 1.0 / d_factor[start:stop]
    return p, q


def estimate_spectrum(
    values: np.ndarray,
    observed: np.ndarray,
    steps: int = APODIZATION_STEPS,
    prewhiten: bool = True,
) -> SpectrumEstimate:
    """Measure a NESTED map's total power spectrum from its observed pixels (module docstring).

    Args:
        values: (12 nside^2,) muK NESTED (hole values ignored).
        observed: (12 nside^2,) bool NESTED.
        steps: apodization width in neighbour steps.
        prewhiten: measure ell >= nside / 2 again on the map whitened by the first estimate
            (:func:`_prewhitened`); False: the one pass.

    Returns:
        The estimate for ell = 0..3 nside - 1.
    """
    observed = np.asarray(observed, dtype=bool)
    nside = hp.npix2nside(observed.size)
    if nside > _MAX_MEASURED_NSIDE:
        return _estimate_degraded(values, observed, steps, prewhiten)
    cleaned = _without_dipole(np.asarray(values, dtype=np.float64), observed)
    return _estimate_cleaned(cleaned, observed, steps, prewhiten)


def _estimate_cleaned(
    cleaned: np.ndarray, observed: np.ndarray, steps: int, prewhiten: bool
) -> SpectrumEstimate:
    """:func:`estimate_spectrum` at Nside <= :data:`_MAX_MEASURED_NSIDE`, on the map with its
    monopole and dipole already removed (:func:`_without_dipole`)."""
    nside = hp.npix2nside(observed.size)
    lmax = 3 * nside - 1
    weights = hp.reorder(apodized_weights(observed, steps), n2r=True)
    weighted = weights * hp.reorder(cleaned, n2r=True)
    # prewhitened, this pass only sets the whitening's shape above ell = nside / 2: no iteration
    kernel = _master_kernel(weights, lmax)
    centres, d_bins, pseudo = _master(weighted, kernel, lmax, iterations=0 if prewhiten else 1)
    cl = _smoothed(centres, d_bins, lmax)
    if prewhiten:
        cl, d_bins = _prewhitened(cleaned, observed, cl, d_bins, centres)
    return SpectrumEstimate(cl, centres, _cl_of(centres, d_bins), pseudo)


def _master(
    weighted: np.ndarray,
    kernel: tuple[np.ndarray, np.ndarray, np.ndarray],
    lmax: int,
    iterations: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MASTER on ``weighted``, a map times the weights (RING: the weighting is done in RING
    order, so a map that comes from ``alm2map`` is not reordered twice; 0.1-0.4 s a reorder at
    Nside 512): bin centres, binned D_b (muK^2) and the pseudo-C_ell (lmax + 1,). ``kernel``:
    :func:`_master_kernel` of the weights; ``iterations``: the pseudo-C_ell's ``anafast``
    iterations (each two more transforms)."""
    centres, p, binned = kernel
    pseudo = sht.anafast(weighted, lmax, iterations)
    return centres, np.linalg.solve(binned, p @ pseudo), pseudo


def _master_kernel(weights: np.ndarray, lmax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What MASTER needs of the weights alone (RING): bin centres, the (nbins, lmax + 1)
    binning ``P`` and the (nbins, nbins) binned coupling ``P M Q``. The window's ``anafast``
    runs without iterations (one transform instead of three; the estimate moved by at most 0.2%
    per ell, 256/60' and 30' seed 0)."""
    window = sht.anafast(weights, lmax)
    edges = bin_edges(lmax)
    p, q = _binning(edges, lmax)
    coupled = min(lmax, MAX_COUPLED_ELL)
    matrix = np.zeros((lmax + 1, lmax + 1))
    matrix[: coupled + 1, : coupled + 1] = coupling_matrix(window, coupled)
    beyond = np.arange(coupled + 1, lmax + 1)
    matrix[beyond, beyond] = np.mean(weights**2)
    return 0.5 * (edges[:-1] + edges[1:] - 1), p, p @ matrix @ q


def _prewhitened(
    cleaned: np.ndarray,
    observed: np.ndarray,
    first: np.ndarray,
    first_bins: np.ndarray,
    centres: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The spectrum measured again on the map whitened by an estimate, :data:`_WHITENING_PASSES`
    times, each pass whitened by the one before; blended with the one-pass estimate ``first``
    ((lmax + 1,) C_ell; ``first_bins`` its (nbins,) binned D_b) by :func:`_blend`. Returns the
    (lmax + 1,) C_ell and (nbins,) binned D_b.

    Why: where a beam has taken the sky below the noise (60' at Nside 256: ell > 400), the
    pseudo-C_ell there is 1e-8 of the one at low ell, and what leaks from the low ells through
    the mask's window (fluctuating with the sky's phases; MASTER only removes its mean) was
    2-5x the noise floor: 19% (ell 256-511) and 70% (512-767) median error, 0.00 in some bins.
    Whitening first (Hivon et al. 2002, sec. 3.4) flattens the spectrum, so the leakage is of
    the order of the power itself: the holes are filled by diffusion, the map's harmonics are
    divided by the square root of the shape (the estimate raised to 0.3x the median of its upper
    half, so bins the first pass lost are not blown up, and smoothed by a running median over
    :data:`_WHITENED_SHAPE_ELLS` ells), MASTER runs on it with
    :data:`_WHITENED_APODIZATION_STEPS` (the filled holes spread about a beam through the
    whitening), and the result is multiplied back by the shape.

    The one-pass estimate is a poor shape where it loses the sky (0.00-0.4 of the truth in most
    bins at ell 400-640, 60' at Nside 256): whitened by it as it was (one pass, unsmoothed), the
    isolated bins it kept came back 1.3-1.8x the truth's (seeds 1 and 2; the realization drew
    that power into the holes: 82-86% of the bins in band), because the smoothed whitened
    estimate was multiplied back by a shape that jumps from bin to bin. Smoothed and whitened
    again by the first pass's result, the bins at ell 330-640 were within 8%, 16% and 8% of the
    truth's on seeds 0-2 (9%, 80% and 73% before).

    Transforms (10 where the estimate took 20; each 0.17 s at Nside 512 on one thread with
    ducc0, :mod:`~convsuite.cosmo.data.sht`, 0.4 s with healpy's build): the
    first pass, the windows, the whitening's ``map2alm`` and the first whitened pass run without
    healpy's iteration, the last whitened pass's ``anafast`` with one. Median error per 10-ell
    bin at ell 512-767 against the truth (seeds 0-2): 256/60' 0.029 / 0.053 / 0.030 (every
    transform iterated once: 0.060 / 0.069 / 0.065; none iterated: 0.139 / 0.133 / 0.147),
    256/30' 0.068 / 0.066 / 0.070 (0.068 / 0.066 / 0.074); below ell 512 within 0.001 of the
    iterated estimate's.
    """
    nside = hp.npix2nside(observed.size)
    lmax = 3 * nside - 1
    filled = diffusive_inpaint(cleaned, observed, _WHITENED_FILL_SWEEPS)
    alm = sht.map2alm(hp.reorder(filled, n2r=True), lmax)
    del filled
    weights = hp.reorder(apodized_weights(observed, _WHITENED_APODIZATION_STEPS), n2r=True)
    kernel = _master_kernel(weights, lmax)  # the same for every pass
    ell = np.rint(centres).astype(int)
    cl = first
    for done in range(_WHITENING_PASSES):
        upper = cl[lmax // 2 :]
        positive = upper[upper > 0]
        floor = 0.3 * float(np.median(positive)) if positive.size else 1e-30
        shape = np.maximum(cl, floor)
        shape[2:] = np.exp(
            median_filter(np.log(shape[2:]), size=_WHITENED_SHAPE_ELLS, mode="nearest")
        )
        filter_ = 1.0 / np.sqrt(shape)
        filter_[:2] = 0.0
        weighted = weights * sht.alm2map(hp.almxfl(alm, filter_), nside, lmax)  # RING
        last = done == _WHITENING_PASSES - 1  # the earlier passes only shape the next
        _, d_white, _ = _master(weighted, kernel, lmax, iterations=int(last))
        cl = _blend(first, _smoothed(centres, d_white, lmax) * shape, nside)
    return cl, _blend(first_bins, d_white * shape[ell], nside, centres)


def _blend(
    first: np.ndarray, second: np.ndarray, nside: int, ell: np.ndarray | None = None
) -> np.ndarray:
    """``first`` below ell = nside / 2, ``second`` from ell = nside, log-linear in between
    (values <= 0 of either taken from the other)."""
    ell = np.arange(first.size) if ell is None else ell
    share = np.clip((ell - nside / 2) / (nside / 2), 0.0, 1.0)
    a = np.where(first > 0, first, second)
    b = np.where(second > 0, second, a)
    with np.errstate(divide="ignore", invalid="ignore"):
        mixed = np.exp((1 - share) * np.log(a) + share * np.log(b))
    return np.where((a > 0) & (b > 0), mixed, np.where(share < 0.5, first, second))


def _without_dipole(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``values`` less the monopole and dipole fitted (least squares) to the observed pixels:
    by the 4 x 4 normal equations (``lstsq``: a handful of observed pixels leaves them singular;
    its SVD of the whole 2.4M x 4 design took 0.8 s at Nside 512, these 0.13 s, coefficients
    within 2e-13)."""
    nside = hp.npix2nside(values.size)
    pixels = np.flatnonzero(observed)
    # chunks of pixels: at Nside 2048 the whole design matrix would take 1.2 GB
    chunks = np.array_split(pixels, max(1, -(-pixels.size // _DIPOLE_CHUNK)))

    def design(chunk: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(chunk.size), *hp.pix2vec(nside, chunk, nest=True)])

    # one chunk (up to Nside 512): its design is built once, not again for the subtraction (a
    # second pix2vec took 0.4 s at Nside 512, where the realization has 0.1-0.6 s to spare)
    kept = design(chunks[0]) if len(chunks) == 1 else None
    normal, projected = np.zeros((4, 4)), np.zeros(4)
    for chunk in chunks:
        rows = design(chunk) if kept is None else kept
        normal += rows.T @ rows
        projected += rows.T @ values[chunk]
    coefficients = np.linalg.lstsq(normal, projected, rcond=None)[0]
    cleaned = np.zeros_like(values)
    for chunk in chunks:
        rows = design(chunk) if kept is None else kept
        cleaned[chunk] = values[chunk] - rows @ coefficients
    return cleaned


def _cl_of(ell: np.ndarray, d: np.ndarray) -> np.ndarray:
    return d * 2 * np.pi / np.maximum(ell * (ell + 1), 1e-30)


def _smoothed(centres: np.ndarray, d_bins: np.ndarray, lmax: int) -> np.ndarray:
    """(lmax + 1,) C_ell from binned D_b: log D interpolated linearly between bin centres
    (constant beyond the first and last), negative bins raised to 1e-12 of the largest."""
    ell = np.arange(lmax + 1)
    floor = 1e-12 * max(float(np.abs(d_bins).max()), 1e-30)
    cl = _cl_of(ell, np.exp(np.interp(ell, centres, np.log(np.maximum(d_bins, floor)))))
    cl[:2] = 0.0
    return cl


def _estimate_degraded(
    values: np.ndarray, observed: np.ndarray, steps: int, prewhiten: bool
) -> SpectrumEstimate:
    """Above Nside 512: MASTER on the map degraded to Nside 512 (a coarse pixel counts when all
    its sub-pixels are observed; its value their mean) below ell = 256, the full-resolution
    pseudo-C_ell over the weights' mean square (taper of :data:`_WHITENED_APODIZATION_STEPS`,
    no coupling, as above :data:`MAX_COUPLED_ELL`) above ell = 512, log-linear in between
    (:func:`_blend`).

    Why both: the degraded map carries the Nside 512 pixel's window (its estimate 0.97, 0.93,
    0.76 of the truth's at ell 200-300, 400-512, 768-1024, Nside 2048, beam 5', 30 muK', seed 0),
    and up to this change it was continued above ell = 1535 by the LCDM shape, with no beam and
    no noise floor (0.31 of the truth's at ell 1536-3071, 0.01 and 0.00 above). The full
    resolution alone reads 0.85 at ell 2-29 (the mask's coupling), 1.005-1.057 at 200-512 and
    within 1.5% above 512 (median per 10-ell bin 0.2-1.1%). One extra transform pair at Nside
    2048 (lmax 6143)."""
    nside = hp.npix2nside(observed.size)
    lmax = 3 * nside - 1
    coarse_observed = degrade_observed(observed, _MAX_MEASURED_NSIDE)
    coarse = degrade_masked_mean(values, observed, _MAX_MEASURED_NSIDE)[0]
    measured = estimate_spectrum(coarse, coarse_observed, steps, prewhiten)
    weights = hp.reorder(apodized_weights(observed, _WHITENED_APODIZATION_STEPS), n2r=True)
    weighted = hp.reorder(_without_dipole(np.asarray(values, dtype=np.float64), observed), n2r=True)
    weighted *= weights
    pseudo = sht.anafast(weighted, lmax) / (float(weights @ weights) / weights.size)
    del weighted, weights
    edges = bin_edges(lmax)
    centres = 0.5 * (edges[:-1] + edges[1:] - 1)
    d_full = _binning(edges, lmax)[0] @ pseudo
    # zeros beyond the coarse estimate: _blend takes the full resolution's values there (and
    # keeps C_0 = C_1 = 0, which both curves have)
    first = np.concatenate([measured.cl, np.zeros(lmax + 1 - measured.cl.size)])
    cl = _blend(first, _smoothed(centres, d_full, lmax), _MAX_MEASURED_NSIDE)
    first_bins = np.concatenate([measured.cl_bins, np.zeros(centres.size - measured.cl_bins.size)])
    cl_bins = _blend(first_bins, _cl_of(centres, d_full), _MAX_MEASURED_NSIDE, centres)
    return SpectrumEstimate(cl, centres, cl_bins, pseudo)


def read_cl(path: str | os.PathLike[str], nside: int) -> np.ndarray:
    """A spectrum file as (3 nside,) C_ell in muK^2 (the map's unit squared).

    Args:
        path: a healpy ``write_cl`` FITS file (its first column, TT, from ell = 0), or a text
            file of two columns ``ell C_ell`` (``#`` comments; missing ells interpolated).
        nside: the map's resolution: the file must reach ell = 3 nside - 1.

    Raises:
        InputError: unreadable, negative or non-finite values, or too short.
    """
    path = Path(path)
    lmax = 3 * nside - 1
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.suffix.lower() in (".fits", ".fit", ".fz"):
        try:
            cl = np.asarray(hp.read_cl(str(path)), dtype=np.float64)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InputError(path, f"not a healpy write_cl FITS file ({error})") from None
        cl = cl[0] if cl.ndim == 2 else cl
    else:
        try:
            table = np.loadtxt(path, ndmin=2)
        except ValueError as error:
            raise InputError(path, f"not a two-column text table ell C_ell ({error})") from None
        if table.shape[1] != 2:
            raise InputError(path, f"{table.shape[1]} columns, expected two: ell C_ell")
        ell, values = table[:, 0], table[:, 1]
        if ell.max(initial=-1) < lmax:
            raise InputError(path, f"reaches ell = {ell.max():g}; Nside {nside} needs {lmax}")
        cl = np.interp(np.arange(lmax + 1), ell, values)
    if cl.size < lmax + 1:
        raise InputError(path, f"reaches ell = {cl.size - 1}; Nside {nside} needs {lmax}")
    cl = cl[: lmax + 1]
    if not np.all(np.isfinite(cl)) or (cl < 0).any():
        raise InputError(path, "C_ell must be finite and >= 0")
    return cl


@dataclass(frozen=True)
class MapPrior:
    """The Gaussian prior the pipeline fills a map's holes with: signal spectrum plus white noise.

    Attributes:
        signal_cl: (3 nside,) C_ell of the map's signal in muK^2, beam and pixel window included.
        noise_sigma: white noise per pixel, muK.
        source: how it was made ("measured", "LCDM, beam 30', noise 5 muK'", a file name).
        estimate: the measurement, when measured (for plots).
    """

    signal_cl: np.ndarray
    noise_sigma: float
    source: str
    estimate: SpectrumEstimate | None = None

    def total_cl(self) -> np.ndarray:
        """(3 nside,) signal plus the noise's flat spectrum ``sigma^2 4 pi / npix``."""
        return self.signal_cl + white_noise_cl(self.noise_sigma**2, self.signal_cl.size // 3)


def pixels_per_steradian(nside: int) -> float:
    """``12 nside^2 / (4 pi)``: white noise of variance v per pixel has ``C_ell = v / this``."""
    return 12 * nside**2 / (4 * np.pi)


def white_noise_cl(variance: float, nside: int) -> float:
    """The flat C_ell (muK^2) of white noise of ``variance`` (muK^2) per pixel at ``nside``."""
    return variance / pixels_per_steradian(nside)


def spectrum_floor(cl: np.ndarray) -> float:
    """The estimate's flat floor (C_ell, muK^2): the median of ``cl`` over the ells >= 2 within
    :data:`_FLOOR_WITHIN` of their lowest value (:func:`measured_prior`)."""
    above = np.asarray(cl)[2:]
    return float(np.median(above[above <= _FLOOR_WITHIN * above.min()]))


def measured_prior(values: np.ndarray, observed: np.ndarray) -> MapPrior:
    """The prior measured from the map (:func:`estimate_spectrum`): white noise of the variance
    :func:`_cross_validated_noise` finds, the rest of the estimate as signal. Separating it gives
    the local Wiener filter a diagonal (a band-limited spectrum alone makes the pixel covariance
    singular) and the realization pixel noise like the map's.

    The spectrum alone bounds the noise from above: its floor (:func:`spectrum_floor`), the
    median of the estimate over the ells (>= 2) within :data:`_FLOOR_WITHIN` of its lowest value
    (where a beam leaves a flat noise tail, the lowest value alone is a downward fluctuation: 60'
    beam at Nside 256, 7-14% low in sigma, and the realization's holes 13-25% short of the noise
    power; the median over the tail was 1-4% low on the same skies). Where the beam leaves the
    sky above the noise up to ell = 3 Nside - 1, that floor is the sky's own damping tail; in
    variance, against the true noise on seeds 0-1 (:func:`_cross_validated_noise`): 6-7x for 30'
    at Nside 256, 26x for 60' at 128, 4700-5100x for 30' at 128, 1400x and 15000-16000x for the default
    2-pixel beam at 128 and 64 (60' at 256 is the one case where it is the noise, 0.92-0.97x).
    Taken as noise, it made the rim's local Wiener filter smooth the data and the realization
    draw white noise where the sky is smooth (hole MSE +1.2% at Nside 128 and 30', mean and
    realization). So the floor is only the upper end of the search; maps above Nside
    :data:`_MAX_MEASURED_NSIDE` keep it (the search is not run there); their floor is measured
    at full resolution up to ell = 3 Nside - 1, where a beam of 3 pixels or more leaves the noise
    (5' at Nside 2048, seed 0, 30 muK arcmin: sigma within 0.1% of the truth's)."""
    observed = np.asarray(observed, dtype=bool)
    nside = hp.npix2nside(observed.size)
    per_pixel = pixels_per_steradian(nside)
    if nside <= _MAX_MEASURED_NSIDE:  # the cleaned map serves the estimate and the noise's search
        cleaned = _without_dipole(np.asarray(values, dtype=np.float64), observed)
        estimate = _estimate_cleaned(cleaned, observed, APODIZATION_STEPS, prewhiten=True)
        noise_cl = spectrum_floor(estimate.cl)  # the noise's flat C_ell; variance = it x per_pixel
        noise_cl = white_noise_cl(
            _cross_validated_noise(cleaned, observed, estimate.cl, noise_cl * per_pixel), nside
        )
    else:
        estimate = estimate_spectrum(values, observed)
        noise_cl = spectrum_floor(estimate.cl)
    signal = np.maximum(estimate.cl - noise_cl, 0.0)
    signal[:2] = 0.0
    return MapPrior(signal, float(np.sqrt(noise_cl * per_pixel)), "measured", estimate)


def _whole_disc_pixels(observed: np.ndarray, order: np.ndarray, reach: float) -> np.ndarray:
    """The pixels of ``order`` (observed, NESTED) with no hole centre within ``reach`` radians of
    their centre (``healpy.query_disc``'s disc all observed), in ``order``'s order, as far as the
    :data:`_CV_SAMPLES`-th (vectorised: a k-d tree of the hole centres, queried in growing
    chunks; the same pixels a loop over ``order`` with ``query_disc`` finds)."""
    nside = hp.npix2nside(observed.size)
    holes = np.flatnonzero(~observed)
    if holes.size == 0:
        return order[:_CV_SAMPLES]
    tree = cKDTree(np.array(hp.pix2vec(nside, holes, nest=True)).T)
    chord = 2.0 * np.sin(reach / 2.0)
    found: list[np.ndarray] = []
    count, start, size = 0, 0, 4 * _CV_SAMPLES
    while start < order.size and count < _CV_SAMPLES:
        chunk = order[start : start + size]
        vectors = np.array(hp.pix2vec(nside, chunk, nest=True)).T
        distance = tree.query(vectors, k=1, distance_upper_bound=chord)[0]
        found.append(chunk[np.isinf(distance)])
        count += found[-1].size
        start, size = start + size, 4 * size
    return np.concatenate(found)[:_CV_SAMPLES] if found else order[:0]


def _cross_validated_noise(
    cleaned: np.ndarray, observed: np.ndarray, total_cl: np.ndarray, upper: float
) -> float:
    """The white-noise variance per pixel (muK^2) of a map with total spectrum ``total_cl``, by
    leave-one-out cross-validation of the pixel covariance (Rasmussen & Williams 2006, sec.
    5.4.2): the largest of :data:`_CV_LEVELS` levels (3.2x apart in variance) whose summed
    log-likelihood is within :data:`_CV_TOLERANCE` of the best. The tolerance is a heuristic:
    the leave-one-out terms share pixels, so it is no calibrated confidence interval.

    For :data:`_CV_SAMPLES` observed pixels (seeded; ones whose disc of radius :data:`_CV_RADIUS`
    pixel sizes is all observed, found by :func:`_whole_disc_pixels`), the Gaussian prediction
    from its :data:`_CV_DATA` nearest neighbours under signal ``total_cl - noise`` plus white
    ``noise`` has residual ``r`` and variance ``v`` (``[K^-1 y]_0 / [K^-1]_00`` and
    ``1 / [K^-1]_00``, K the covariance of the pixel and its neighbours, y their values); the
    summed log-likelihood ``-(log v + r^2 / v) / 2`` is evaluated on log-spaced variances from
    ``upper`` (the spectrum's floor) down :data:`_CV_DECADES` decades. Too much noise smooths the
    prediction, too little makes it chase the noise: where the sky's own small scales hide the
    noise the likelihood is flat below some level, and the top of that plateau is taken (the
    rim's extrapolation from data taken as noiseless amplifies their noise: no noise at all put
    the hole MSE at 1.4x at Nside 128, 60'). The search never goes above ``upper``: where the
    best level is the top one, the answer is ``upper`` (the floor bounds the noise from above:
    white noise adds its flat C_ell to every ell of the total). Fewer than
    :data:`_CV_MIN_SAMPLES` whole discs (scattered holes, a tiny sky fraction) or no finite
    likelihood: ``upper``, with a warning.

    Against the true variance (seeds 0 and 1): issue 13's targets, 30' at Nside 256 0.64-0.66x
    (the floor 6-7x), 60' at 128 0.82x (floor 26x), 60' at 256 the floor itself (0.92-0.97x);
    where a plateau hides the noise, its top: 30' at 128 5-15x (floor 4700-5100x), the default
    prior 1.4-4.3x at Nside 128 (floor 1400x) and 15x at 64 (floor 15000-16000x). Issue 13's
    f_sky 0.75 masks: 0.12-0.16 s at Nside 64, 0.13 s at 128, 0.18 s at 256, 0.37 s at 512 (15
    batched solves of 400 41 x 41 systems; the k-d tree over the holes adds 0.18 s at 512 to the
    query_disc loop it replaced); 30% scattered dead pixels (no whole disc, the floor kept):
    0.02 s at Nside 64, 0.08 s at 128, 3.8 s at 512 (the tree queried at every observed pixel;
    the loop took 0.46 s, 1.85 s and ~23 s). One thread, load 1.1-1.4.

    Args:
        cleaned: (12 nside^2,) muK NESTED, monopole and dipole removed, 0 in the holes.
        observed: (12 nside^2,) bool NESTED.
        total_cl: (3 nside,) the measured total spectrum, muK^2.
        upper: the largest variance tried, muK^2.
    """
    observed = np.asarray(observed, dtype=bool)
    nside = hp.npix2nside(observed.size)
    reach = _CV_RADIUS * hp.nside2resol(nside)
    rng = np.random.default_rng(0)
    discs = []  # the left-out pixel first, then its nearest _CV_DATA observed pixels
    for pixel in _whole_disc_pixels(observed, rng.permutation(np.flatnonzero(observed)), reach):
        centre = hp.pix2vec(nside, pixel, nest=True)
        disc = hp.query_disc(nside, centre, reach, nest=True)
        if disc.size > _CV_DATA:
            nearness = np.array(centre) @ np.array(hp.pix2vec(nside, disc, nest=True))
            discs.append(disc[np.argsort(-nearness)[: _CV_DATA + 1]])  # the pixel itself first
    if len(discs) < _CV_MIN_SAMPLES:
        _LOG.warning(
            "noise cross-validation: %d observed pixels with a whole disc of %g pixel sizes "
            "(at least %d needed): the spectrum's floor is kept as the noise",
            len(discs),
            _CV_RADIUS,
            _CV_MIN_SAMPLES,
        )
        return upper
    vectors = np.array(hp.pix2vec(nside, np.array(discs), nest=True)).transpose(1, 2, 0)
    separation = 1.0 - vectors @ vectors.transpose(0, 2, 1)  # (samples, n, n)
    data = cleaned[np.array(discs)]  # (samples, n)
    unit = np.zeros(data.shape + (1,))
    unit[:, 0] = 1.0
    levels = upper * np.logspace(-_CV_DECADES, 0, _CV_LEVELS)
    likelihood = np.full(levels.size, np.nan)
    diagonal = np.arange(data.shape[1])
    extent = 2 * _CV_RADIUS + 2

    def signal_covariance(cl: np.ndarray) -> np.ndarray:
        cl = cl.copy()
        cl[:2] = 0.0
        return covariance_function(cl, nside, extent)(separation)

    # signal = total - noise is linear in the noise until it would go negative at some ell
    total, flat = signal_covariance(total_cl), signal_covariance(np.ones_like(total_cl))
    lowest = float(total_cl[2:].min())
    for i, noise in enumerate(levels):
        noise_cl = white_noise_cl(noise, nside)
        if noise_cl <= lowest:
            system = total - noise_cl * flat
        else:
            system = signal_covariance(np.maximum(total_cl - noise_cl, 0.0))
        system[:, diagonal, diagonal] += noise
        try:
            inverse_row = np.linalg.solve(system, unit)[..., 0]  # [K^-1]_0. (K symmetric)
        except np.linalg.LinAlgError:
            continue  # a singular system: this level's likelihood stays NaN
        variance = 1.0 / inverse_row[:, 0]
        residual = np.einsum("sn,sn->s", inverse_row, data) * variance
        with np.errstate(invalid="ignore", divide="ignore"):
            likelihood[i] = -0.5 * float(np.sum(np.log(variance) + residual**2 / variance))
    finite = np.isfinite(likelihood)
    if not finite.any():
        _LOG.warning("noise cross-validation: no finite likelihood; the spectrum's floor is kept")
        return upper
    best = float(likelihood[finite].max())
    return float(levels[finite & (likelihood >= best - _CV_TOLERANCE)].max())


def given_prior(
    nside: int,
    cl: np.ndarray | None = None,
    fwhm_arcmin: float | None = None,
    noise_uk_arcmin: float | None = None,
    source: str = "",
) -> MapPrior:
    """A prior from what the user gives instead of measuring it.

    Args:
        nside: the map's resolution.
        cl: (>= 3 nside,) the sky's C_ell in muK^2 (e.g. :func:`read_cl`); None: the shipped LCDM.
        fwhm_arcmin: Gaussian beam applied to ``cl``; None: none with ``cl`` (it is taken as the
            map's beamed spectrum), the Nside's default (2 pixels) with LCDM.
        noise_uk_arcmin: white noise; None: 0 with ``cl``, the default 1 muK arcmin with LCDM.
        source: a label (the file name); default: the parameters.
    """
    if cl is None:
        fwhm = fwhm_arcmin  # None: SkyPrior's default beam
        noise = DEFAULT_NOISE_UK_ARCMIN if noise_uk_arcmin is None else noise_uk_arcmin
        signal = SkyPrior(fwhm_arcmin=fwhm, noise_uk_arcmin=noise).signal_cl(nside)
    else:
        fwhm = 0.0 if fwhm_arcmin is None else fwhm_arcmin
        noise = 0.0 if noise_uk_arcmin is None else noise_uk_arcmin
        beam = hp.gauss_beam(np.radians(fwhm / 60.0), lmax=3 * nside - 1)
        signal = np.asarray(cl, dtype=np.float64)[: 3 * nside] * beam**2
    label = source or ("LCDM" if cl is None else "C_ell")
    beam_label = "2 px" if fwhm is None else f"{fwhm:g}'"
    return MapPrior(
        signal,
        pixel_noise_sigma(nside, noise),
        f"{label}, beam {beam_label}, noise {noise:g} muK arcmin",
    )
