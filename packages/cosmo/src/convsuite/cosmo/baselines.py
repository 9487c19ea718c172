"""The baselines SkyReconNet is measured against: diffusive inpainting, Wiener filter, constrained
realization.

* :func:`diffusive_inpaint`: every hole pixel becomes the mean of its (up to 8) neighbours from
  ``healpy.get_all_neighbours``, iterated to convergence. Started coarse to fine (the NESTED
  children of a pixel are its 4 sub-pixels, so degrading is a reshape), which makes wide holes
  converge in a few dozen sweeps per level instead of thousands.
* :class:`WienerFilter`: for a Gaussian sky with known beam-convolved spectrum ``S_l`` and white
  noise of variance ``sigma^2`` per observed pixel, the posterior mean (the MMSE estimate, the
  lowest masked-pixel MSE any method can reach on a Gaussian sky) solves
  ``(S^-1 + Y^T M N^-1 Y) s = Y^T M N^-1 d``, Y the spherical-harmonic synthesis and M the mask.
  It is solved for ``x = S^-1/2 s`` by preconditioned conjugate gradients
  (``(I + S^1/2 Y^T M N^-1 Y S^1/2) x = S^1/2 Y^T M N^-1 d``, preconditioner diagonal in ell with
  ``M ~ f_sky``), with healpy's ``alm2map`` as Y and ``npix / 4 pi * map2alm(iter=0)`` as its
  adjoint ``Y^T``. At CMB signal-to-noise the diagonal preconditioner leaves the hole modes
  badly conditioned and CG alone crawls, so CG starts from a messenger-field solution with
  cooling (Elsner & Wandelt 2013): ``t = d`` on observed pixels and ``s`` in the holes, then
  ``s = S / (S + lambda tau) t`` in harmonic space, lambda lowered geometrically to 1. Checked
  against the dense exact solution at Nside 8-32 (tests): the solve is not exact at high
  resolution within its iteration budget; the figures quoted say how far it got.
* :meth:`WienerFilter.constrained_realization`: Hoffman & Ribak (1991): draw a sky ``s'`` and
  noise ``n'`` from the prior, then ``s' + W (d - M (Y s' + n'))``, W the Wiener filter. A sample
  of the posterior: the right power in the holes, and about twice the Wiener filter's MSE there.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import healpy as hp
import numpy as np

from convsuite.cosmo.data.simulate import gaussian_alm

__all__ = ["WienerFilter", "WienerResult", "diffusive_inpaint"]

_LOG = logging.getLogger(__name__)


def _neighbour_table(nside: int) -> tuple[np.ndarray, np.ndarray]:
    neighbours = hp.get_all_neighbours(nside, np.arange(hp.nside2npix(nside)), nest=True)
    valid = neighbours >= 0
    return np.where(valid, neighbours, 0), valid.astype(np.float64)


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
        children = observed.reshape(-1, 4)
        counts = children.sum(1)
        coarse = np.where(
            counts > 0, (values * observed).reshape(-1, 4).sum(1) / np.maximum(counts, 1), 0.0
        )
        start = diffusive_inpaint(coarse, counts > 0, sweeps, coarsest_nside)
        filled = np.where(observed, values, np.repeat(start, 4))
        level_sweeps = sweeps
    else:
        filled = np.where(observed, values, values[observed].mean())
        level_sweeps = 20 * sweeps
    neighbours, weights = _neighbour_table(nside)
    holes = ~observed
    norm = weights.sum(0)
    for _ in range(level_sweeps):
        mean = (filled[neighbours] * weights).sum(0) / norm
        filled[holes] = mean[holes]
    return filled


@dataclass(frozen=True)
class WienerResult:
    """A solve: the (12 nside^2,) float64 NESTED signal map, CG iterations, residual, seconds."""

    signal: np.ndarray
    iterations: int
    residual: float
    seconds: float


class WienerFilter:
    """Wiener filter and constrained realizations of a masked HEALPix map (see the module docstring).

    Args:
        observed: (12 nside^2,) bool NESTED mask, True where observed.
        cl: (>= 3 nside,) C_ell of the sky in muK^2, beam included (``C_l b_l^2``).
        noise_sigma: white noise per observed pixel, muK (> 0; it also conditions the solve).
        tol: CG stops when the preconditioned residual norm falls below ``tol`` x its start.
        max_iterations: CG iteration cap.
        messenger_iterations: messenger-field sweeps (one SHT pair each) of the warm start.
    """

    def __init__(
        self,
        observed: np.ndarray,
        cl: np.ndarray,
        noise_sigma: float,
        tol: float = 1e-6,
        max_iterations: int = 300,
        messenger_iterations: int = 200,
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
        self.tol, self.max_iterations = tol, max_iterations
        self.messenger_iterations = messenger_iterations
        self._ell = hp.Alm.getlm(self.lmax)[0]
        self._m = hp.Alm.getlm(self.lmax)[1]
        self._sqrt_s = np.sqrt(self.cl)[self._ell]
        self._ring_mask = hp.reorder(self.observed, n2r=True).astype(np.float64)
        pixels_per_sr = self.observed.size / (4 * np.pi)
        precision = self._ring_mask.mean() * self.cl * pixels_per_sr / self.noise_sigma**2
        self._preconditioner = (1.0 / (1.0 + precision))[self._ell]

    # alm vectors with the inner product of the real field (m > 0 terms count twice)
    def _dot(self, a: np.ndarray, b: np.ndarray) -> float:
        products = (a * np.conj(b)).real
        return float(np.sum(np.where(self._m == 0, products, 2.0 * products)))

    def _synthesis(self, alm: np.ndarray) -> np.ndarray:
        """alm -> RING map."""
        return hp.alm2map(alm, self.nside, lmax=self.lmax)

    def _adjoint_synthesis(self, ring_map: np.ndarray) -> np.ndarray:
        """RING map -> alm, the adjoint of :meth:`_synthesis` for :meth:`_dot`."""
        alm = hp.map2alm(ring_map, lmax=self.lmax, iter=0)
        return alm * (ring_map.size / (4 * np.pi))

    def _apply(self, x: np.ndarray) -> np.ndarray:
        weighted = self._synthesis(self._sqrt_s * x) * self._ring_mask / self.noise_sigma**2
        return x + self._sqrt_s * self._adjoint_synthesis(weighted)

    def solve(self, data: np.ndarray) -> WienerResult:
        """The Wiener-filtered signal of NESTED ``data`` (holes ignored), as a full NESTED map."""
        started = time.perf_counter()
        ring = hp.reorder(np.where(self.observed, data, 0.0).astype(np.float64), n2r=True)
        rhs = self._sqrt_s * self._adjoint_synthesis(ring * self._ring_mask / self.noise_sigma**2)
        x = self._messenger_start(ring)
        residual = rhs - self._apply(x)
        z = self._preconditioner * residual
        direction = z.copy()
        rz = self._dot(residual, z)
        start = np.sqrt(rz) or 1.0
        iterations = 0
        while iterations < self.max_iterations and np.sqrt(max(rz, 0.0)) >= self.tol * start:
            iterations += 1
            a_direction = self._apply(direction)
            step = rz / self._dot(direction, a_direction)
            x += step * direction
            residual -= step * a_direction
            z = self._preconditioner * residual
            rz_new = self._dot(residual, z)
            direction = z + (rz_new / rz) * direction
            rz = rz_new
        relative = float(np.sqrt(max(rz, 0.0)) / start)
        if relative >= self.tol:
            _LOG.warning("Wiener CG stopped at %d iterations, residual %.2e", iterations, relative)
        signal = hp.reorder(self._synthesis(self._sqrt_s * x), r2n=True)
        return WienerResult(signal, iterations, relative, time.perf_counter() - started)

    def _messenger_start(self, ring_data: np.ndarray) -> np.ndarray:
        """x = S^-1/2 s of the cooled messenger-field solution (see the module docstring)."""
        tau = self.noise_sigma**2 * 4 * np.pi / self.observed.size  # white noise in harmonic space
        observed = self._ring_mask > 0
        signal = np.zeros_like(ring_data)
        alm = np.zeros(self._ell.size, dtype=np.complex128)
        sweeps = max(self.messenger_iterations, 0)
        top = max(float(self.cl.max()) / tau, 1.0)
        # Near lmax = 3 nside - 1, map2alm(iter=0) does not invert alm2map well enough for the
        # fixed-point iteration (it diverged at Nside 64): the start keeps ell <= 2 nside only,
        # the CG that follows solves every ell.
        band = (np.arange(self.lmax + 1) <= 2 * self.nside).astype(np.float64)
        for cooling in np.geomspace(top, 1.0, sweeps) if sweeps else []:
            alm = hp.map2alm(np.where(observed, ring_data, signal), lmax=self.lmax, iter=0)
            alm = hp.almxfl(alm, band * self.cl / (self.cl + cooling * tau))
            signal = self._synthesis(alm)
        safe = np.where(self._sqrt_s > 0, self._sqrt_s, 1.0)
        return np.where(self._sqrt_s > 0, alm / safe, 0.0)

    def inpaint(self, data: np.ndarray) -> np.ndarray:
        """Observed pixels kept, holes filled with the Wiener filter (NESTED, float64)."""
        return np.where(self.observed, data, self.solve(data).signal)

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
        )
