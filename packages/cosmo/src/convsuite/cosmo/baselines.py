"""The baselines SkyReconNet is measured against: diffusive inpainting, Wiener filter, constrained
realization.

* :func:`diffusive_inpaint`: every hole pixel becomes the mean of its (up to 8) neighbours from
  ``healpy.get_all_neighbours``, iterated to convergence. Started coarse to fine (the NESTED
  children of a pixel are its 4 sub-pixels, so degrading is a reshape), which makes wide holes
  converge in a few dozen sweeps per level instead of thousands.
* :class:`WienerFilter`: for a Gaussian sky with known beam-convolved spectrum ``S_l`` and white
  noise of variance ``sigma^2`` per observed pixel, the posterior mean (the MMSE estimate, the
  lowest masked-pixel MSE any method can reach on a Gaussian sky) is ``s = C_{.o} z`` with
  ``(C_oo + sigma^2 I) z = d_o``: ``C = Y S Y^T`` the pixel covariance, ``o`` the observed
  pixels, Y healpy's ``alm2map`` and ``npix / 4 pi * map2alm(iter=0)`` its exact adjoint. This
  data-space form is solved by preconditioned conjugate gradients with the full-sky inverse
  ``Y (S npix / 4 pi + sigma^2)^-1 Y^T 4 pi / npix`` restricted to the observed pixels as the
  preconditioner (2 SHT pairs per iteration), restarted from the true residual every
  ``restart`` iterations. The signal-space form ``(S^-1 + Y^T M N^-1 Y) s = Y^T M N^-1 d`` with
  a diagonal preconditioner (tried first, with a messenger-field start) leaves every
  hole-localised mode with an eigenvalue ``~ sigma^2 / (S npix / 4 pi)`` (1e-10 at 1 muK arcmin)
  and crawls. Against the dense exact posterior mean (:func:`dense_wiener`; one Nside 32 sky,
  default beam and noise: exact hole MSE 806 muK^2, diffusive 1118): signal-space CG 1035 after
  300 iterations and 913 after 3000; this data-space CG 832 after 300. At high signal-to-noise
  the problem stays ill-conditioned all the same (S/N per multipole ~1e8 at low ell on issue
  13's target skies), so the solver stops at ``max_iterations`` and the figures quoted for
  "Wiener" are this budgeted solve. Its reported residual is the true relative residual
  ``|d_o - (C_oo + sigma^2) z| / |d_o|`` recomputed from the final ``z``: the preconditioned
  norm CG minimises weights smooth residuals by ``1 / (S npix / 4 pi)`` and reads small while
  the hole map is still far off (a target-like sky at Nside 16, the beam over as many pixels
  as 30' at 256: preconditioned residual 1.9e-4 after 150 iterations, true 4.2e-2, hole map 39%
  off :func:`dense_wiener`; at Nside 32 after 3000 iterations 4.4e-2, 3.5e-2 and 21%:
  ``benchmarks/wiener_convergence.py``). A truncated solve's hole MSE bounds the exact posterior
  mean's neither from above nor from below; a solve whose residual is above
  :data:`CONVERGED_RESIDUAL` is reported as not converged.
* :meth:`WienerFilter.constrained_realization`: Hoffman & Ribak (1991): draw a sky ``s'`` and
  noise ``n'`` from the prior, then ``s' + W (d - M (Y s' + n'))``, W the Wiener filter. A sample
  of the posterior: the right power in the holes, and about twice the Wiener filter's MSE there.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from dataclasses import dataclass

import healpy as hp
import numba
import numpy as np
from numpy.polynomial.legendre import legval

from convsuite.cosmo.data.regrade import degrade_masked_mean
from convsuite.cosmo.data.simulate import gaussian_alm

__all__ = [
    "CONVERGED_RESIDUAL",
    "WienerFilter",
    "WienerResult",
    "dense_wiener",
    "diffusive_inpaint",
    "neighbours_of",
    "relax",
]

_LOG = logging.getLogger(__name__)


_CACHED_NSIDE = 512  # tables up to here are kept (about 120 MB at Nside 512)


@functools.lru_cache(maxsize=12)
def _cached_neighbour_table(nside: int) -> np.ndarray:
    return hp.get_all_neighbours(nside, np.arange(hp.nside2npix(nside)), nest=True).astype(np.int32)


def neighbours_of(nside: int, pixels: np.ndarray) -> np.ndarray:
    """(8, len(pixels)) NESTED neighbours of ``pixels``, -1 where there is none.

    Up to ``_CACHED_NSIDE`` from a full-sky table kept between calls; above, looked up for these
    pixels only (a full table at Nside 2048 would take 2 GB).
    """
    if nside <= _CACHED_NSIDE:
        return _cached_neighbour_table(nside)[:, pixels]
    return hp.get_all_neighbours(nside, pixels, nest=True)


def relax(
    values: np.ndarray, pixels: np.ndarray, sweeps: int, in_place: bool = False
) -> np.ndarray:
    """``values`` (NESTED, float64 copy) after ``sweeps`` Jacobi sweeps of neighbour means over
    ``pixels`` only; every other pixel is held fixed. ``in_place``: a float64 ``values`` is
    relaxed and returned itself (no copy: 0.4 GB at Nside 2048).

    The sweeps are compiled (:func:`_jacobi_sweeps`): the same sums in the same order as the
    sparse product they replaced, bit for bit (tested), and threaded by numba (the product and
    its operator, built per call, took 1.1 s of a Nside 512 realization; a Nside 512
    ``diffusive_inpaint`` now 0.47 s, 0.79 s on one thread; Python threads with a pool call per
    sweep left the realization at 10.3 s against 9.4-9.9 s). numba's
    OpenMP pool kills a fork()ed child that enters it after the parent did, so a fork()ed child
    (a DataLoader worker) runs the same loops on one thread (:data:`_FORKED`).
    """
    relaxed = np.array(values, dtype=np.float64, copy=None if in_place else True)
    pixels = np.asarray(pixels, dtype=np.int64)
    around = np.sort(neighbours_of(hp.npix2nside(relaxed.size), pixels), axis=0)
    around = np.ascontiguousarray(around.T, dtype=np.int64)  # (n, 8), -1 first
    sweep = _jacobi_sweeps_serial if _FORKED else _jacobi_sweeps
    sweep(relaxed, pixels, around, 1.0 / (around >= 0).sum(1), sweeps)
    return relaxed


def _sweeps(
    relaxed: np.ndarray, pixels: np.ndarray, around: np.ndarray, weight: np.ndarray, sweeps: int
) -> None:
    """``sweeps`` Jacobi sweeps in place: ``relaxed[pixels[i]]`` becomes ``sum_k weight[i] x
    relaxed[around[i, k]]`` over the neighbours present (``around`` (n, 8) ascending, -1 where
    none; ``weight`` 1 / their count), every mean from the sweep before."""
    n = pixels.size
    mean = np.empty(n)
    for _ in range(sweeps):
        for i in numba.prange(n):
            total = 0.0
            for k in range(around.shape[1]):
                j = around[i, k]
                if j >= 0:
                    total += weight[i] * relaxed[j]
            mean[i] = total
        for i in range(n):  # serial: numba fuses two prange loops into one, reading the
            relaxed[pixels[i]] = mean[i]  # sweep's new values before the sweep has ended


_jacobi_sweeps = numba.njit(parallel=True, nogil=True, cache=True)(_sweeps)
# not cached: numba's cache keys a function by its source and signature, not by ``parallel``, so
# a cached serial twin would load the threaded code (and the forked child die all the same)
_jacobi_sweeps_serial = numba.njit(nogil=True)(_sweeps)

_FORKED = False
"""True in a fork()ed child of this process: :func:`relax` stays out of numba's OpenMP pool."""


def _mark_forked() -> None:
    global _FORKED
    _FORKED = True


os.register_at_fork(after_in_child=_mark_forked)


def diffusive_inpaint(
    values: np.ndarray, observed: np.ndarray, sweeps: int = 60, coarsest_nside: int = 4
) -> np.ndarray:
    """Fill the holes of a NESTED map by iterated neighbour means, coarse to fine.

    Args:
        values: (12 nside^2,) map, NESTED (hole values are ignored).
        observed: (12 nside^2,) bool, True where ``values`` is data.
        sweeps: Jacobi sweeps at each resolution level.
        coarsest_nside: where the coarse-to-fine start is solved (with ``20 x sweeps`` sweeps).

    Returns:
        (12 nside^2,) float64 NESTED: ``values`` where observed, the diffusion fill elsewhere.
    """
    values = np.asarray(values, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    nside = hp.npix2nside(values.size)
    if not observed.any():
        raise ValueError("nothing observed")
    if nside > coarsest_nside:
        coarse, coverage = degrade_masked_mean(values, observed, nside // 2)
        start = diffusive_inpaint(coarse, coverage > 0, sweeps, coarsest_nside)
        filled = np.where(observed, values, np.repeat(start, 4))
        level_sweeps = sweeps
    else:
        filled = np.where(observed, values, values[observed].mean())
        level_sweeps = 20 * sweeps
    return relax(filled, np.flatnonzero(~observed), level_sweeps)


def dense_wiener(
    data: np.ndarray, observed: np.ndarray, cl: np.ndarray, noise_sigma: float
) -> np.ndarray:
    """The exact posterior mean by a dense solve, for small maps (Nside <= 32: 12288^2 floats).

    The pixel covariance ``C(theta) = sum_l (2l + 1) / 4 pi C_l P_l(cos theta)`` (ell < 3 nside),
    then ``C_ho (C_oo + sigma^2 I)^-1 d_o`` in the holes, the data where observed.

    Args:
        data: (12 nside^2,) NESTED map, muK (hole values are ignored).
        observed: (12 nside^2,) bool NESTED, True where observed.
        cl: (>= 3 nside,) C_ell of the sky in muK^2, beam included.
        noise_sigma: white noise per observed pixel, muK.

    Returns:
        (12 nside^2,) float64 NESTED.
    """
    nside = hp.npix2nside(np.asarray(data).size)
    vectors = np.stack(hp.pix2vec(nside, np.arange(12 * nside**2), nest=True), 1)
    ell = np.arange(3 * nside)
    covariance = legval(np.clip(vectors @ vectors.T, -1, 1), (2 * ell + 1) / (4 * np.pi) * cl[ell])
    o, h = np.asarray(observed, dtype=bool), ~np.asarray(observed, dtype=bool)
    filled = np.asarray(data, dtype=np.float64).copy()
    noisy = covariance[np.ix_(o, o)] + noise_sigma**2 * np.eye(int(o.sum()))
    filled[h] = covariance[np.ix_(h, o)] @ np.linalg.solve(noisy, filled[o])
    return filled


@dataclass(frozen=True)
class WienerResult:
    """A solve: the (12 nside^2,) float64 NESTED signal map, CG iterations, seconds, the true
    relative residual ``|d_o - (C_oo + sigma^2) z| / |d_o|`` of the final ``z`` (recomputed), and
    ``recurrence``, CG's own preconditioned residual relative to its start where it stopped (what
    ``tol`` is compared with; it can read converged while ``residual`` does not)."""

    signal: np.ndarray
    iterations: int
    residual: float
    seconds: float
    recurrence: float

    @property
    def converged(self) -> bool:
        """Whether the final relative residual is at most :data:`CONVERGED_RESIDUAL`."""
        return self.residual <= CONVERGED_RESIDUAL


CONVERGED_RESIDUAL = 1e-3
"""A solve whose true relative residual (:class:`WienerResult`) is above this is reported as not
converged: its map may be off the exact posterior mean, so rows measured against it may be too.
Necessary, not sufficient: no solve of a target sky has reached it, so how far a solve at this
residual is from the exact mean is unmeasured. The solver's own ``tol`` (1e-5, on the
preconditioned recurrence) is only where CG stops early."""


class WienerFilter:
    """Wiener filter and constrained realizations of a masked HEALPix map (see the module docstring).

    Args:
        observed: (12 nside^2,) bool NESTED mask, True where observed.
        cl: (>= 3 nside,) C_ell of the sky in muK^2, beam included (``C_l b_l^2``).
        noise_sigma: white noise per observed pixel, muK (> 0; it also conditions the solve).
        tol: CG stops when the preconditioned residual norm falls below ``tol`` x its start.
        max_iterations: CG iteration cap.
        restart: CG restarts from the true residual every this many iterations.
    """

    def __init__(
        self,
        observed: np.ndarray,
        cl: np.ndarray,
        noise_sigma: float,
        tol: float = 1e-5,
        max_iterations: int = 300,
        restart: int = 100,
    ) -> None:
        if noise_sigma <= 0:
            raise ValueError(f"noise_sigma must be > 0, got {noise_sigma}")
        self.observed = np.asarray(observed, dtype=bool)
        self.nside = hp.npix2nside(self.observed.size)
        self.lmax = 3 * self.nside - 1
        cl = np.asarray(cl, dtype=np.float64)
        if cl.size < self.lmax + 1:
            raise ValueError(f"cl must reach ell = {self.lmax}, got {cl.size} values")
        self.cl = cl[: self.lmax + 1]
        self.noise_sigma = float(noise_sigma)
        self.tol, self.max_iterations, self.restart = tol, max_iterations, max(restart, 1)
        ell = hp.Alm.getlm(self.lmax)[0]
        self._signal = self.cl[ell]
        self._pixels_per_sr = self.observed.size / (4 * np.pi)
        self._ring_mask = hp.reorder(self.observed, n2r=True).astype(np.float64)
        noise_alm = self.noise_sigma**2 / self._pixels_per_sr
        self._full_sky_inverse = 1.0 / (self._pixels_per_sr * (self._signal + noise_alm))

    def _synthesis(self, alm: np.ndarray) -> np.ndarray:
        """alm -> RING map."""
        return hp.alm2map(alm, self.nside, lmax=self.lmax)

    def _adjoint_synthesis(self, ring_map: np.ndarray) -> np.ndarray:
        """RING map -> alm, the adjoint of :meth:`_synthesis` (``Y^T``)."""
        return hp.map2alm(ring_map, lmax=self.lmax, iter=0) * self._pixels_per_sr

    def _signal_alm(self, ring_map: np.ndarray) -> np.ndarray:
        """``S Y^T`` of an observed-pixel vector: the alm of ``C z``."""
        return self._signal * self._adjoint_synthesis(ring_map * self._ring_mask)

    def _apply(self, z: np.ndarray) -> np.ndarray:
        """``(C_oo + sigma^2) z`` on the observed pixels (RING, zero in the holes)."""
        covariance = self._synthesis(self._signal_alm(z)) * self._ring_mask
        return covariance + self.noise_sigma**2 * z

    def _precondition(self, residual: np.ndarray) -> np.ndarray:
        alm = self._adjoint_synthesis(residual * self._ring_mask) * self._full_sky_inverse
        return self._synthesis(alm) * self._ring_mask

    def solve(self, data: np.ndarray) -> WienerResult:
        """The Wiener-filtered signal of NESTED ``data`` (holes ignored), as a full NESTED map."""
        started = time.perf_counter()
        ring = hp.reorder(np.where(self.observed, data, 0.0).astype(np.float64), n2r=True)
        ring *= self._ring_mask
        z = np.zeros_like(ring)
        start = np.sqrt(max(float(ring @ self._precondition(ring)), 0.0)) or 1.0
        iterations, relative = 0, 1.0
        while iterations < self.max_iterations and relative >= self.tol:
            residual = ring - self._apply(z) if iterations else ring.copy()
            preconditioned = self._precondition(residual)
            direction = preconditioned.copy()
            rz = float(residual @ preconditioned)
            for _ in range(min(self.restart, self.max_iterations - iterations)):
                iterations += 1
                a_direction = self._apply(direction)
                step = rz / float(direction @ a_direction)
                z += step * direction
                residual -= step * a_direction
                preconditioned = self._precondition(residual)
                rz_new = float(residual @ preconditioned)
                relative = np.sqrt(max(rz_new, 0.0)) / start
                if relative < self.tol:
                    break
                direction = preconditioned + (rz_new / rz) * direction
                rz = rz_new
        if relative >= self.tol:
            _LOG.info("Wiener CG stopped at %d iterations, residual %.2e", iterations, relative)
        true_residual = np.linalg.norm(ring - self._apply(z)) / (np.linalg.norm(ring) or 1.0)
        signal = hp.reorder(self._synthesis(self._signal_alm(z)), r2n=True)
        seconds = time.perf_counter() - started
        return WienerResult(signal, iterations, float(true_residual), seconds, float(relative))

    def constrained_realization(self, data: np.ndarray, seed: int) -> WienerResult:
        """A Hoffman-Ribak constrained realization of the signal (NESTED, full sky)."""
        started = time.perf_counter()
        rng = np.random.default_rng(seed)
        prior_alm = gaussian_alm(self.cl, rng)
        prior = hp.reorder(self._synthesis(prior_alm), r2n=True)
        noise = rng.normal(0.0, self.noise_sigma, prior.size)
        correction = self.solve(np.asarray(data, dtype=np.float64) - (prior + noise))
        return WienerResult(
            prior + correction.signal,
            correction.iterations,
            correction.residual,
            time.perf_counter() - started,
            correction.recurrence,
        )
