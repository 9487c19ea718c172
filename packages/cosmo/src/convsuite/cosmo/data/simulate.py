"""Seeded simulations: Gaussian LCDM CMB temperature skies and realistic masks.

Skies. Spherical-harmonic coefficients are drawn from a power spectrum C_ell (default: the shipped
Planck-2018 LCDM lensed TT table, :func:`lcdm_cl`), multiplied by a Gaussian beam, synthesised
with ``healpy.alm2map`` up to ``lmax = 3 nside - 1`` (so the map is band-limited), plus white
noise, in muK, NESTED. The coefficients are drawn from a numpy ``Generator`` rather than by
``healpy.synfast``, which draws from numpy's global random state: a seed then means the same sky
whatever else ran before. No pixel window is applied (healpy's ``pixwin`` downloads its tables).

Masks (1 = observed). A galactic cut: the pixels where ``|sin b| exp(a g)`` is lowest, ``b`` the
galactic latitude and ``g`` a smooth unit-variance random field (ell <~ 20), so the cut is a band
that always covers the galactic plane, its edges wandering in latitude; the threshold is the
quantile giving the requested f_sky.
Point sources: discs of radius 5-30 arcmin at random positions over the whole sky.

Priors. :class:`SkyPrior` is one sky's statistics: the LCDM spectrum scaled in amplitude and tilted,
a Gaussian beam and white noise; :class:`PriorFamily` draws them from ranges (the bundled networks
are trained on :data:`TRAINING_FAMILY`, beam 5-60 arcmin, amplitude +-20%, n_s 0.92-1.00, noise
0-30 muK arcmin). The tilt multiplies C_ell by ``(ell / 700) ** (n_s - 0.9649)``: a change of the
primordial tilt approximated at the pivot ``k = 0.05 / Mpc`` (``ell ~ 700`` at the 14 Gpc distance
to last scattering), not a Boltzmann solve (camb, the optional extra, for that).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import healpy as hp
import numpy as np

__all__ = [
    "DEFAULT_NOISE_UK_ARCMIN",
    "LCDM_N_S",
    "TARGET_PRIORS",
    "TRAINING_FAMILY",
    "PriorFamily",
    "SkyPrior",
    "SkySimulation",
    "beamed_lcdm_cl",
    "default_fwhm_arcmin",
    "galactic_cut",
    "gaussian_alm",
    "lcdm_cl",
    "pixel_noise_sigma",
    "point_source_mask",
    "simulate_cmb",
    "simulate_mask",
    "simulate_sky",
]


@lru_cache(maxsize=1)
def _lcdm_table() -> np.ndarray:
    with resources.files("convsuite.cosmo.data").joinpath("lcdm_tt.txt").open() as handle:
        table = np.loadtxt(handle)
    return table[:, 1]


def lcdm_cl(lmax: int) -> np.ndarray:
    """(lmax + 1,) LCDM lensed TT C_ell in muK^2 (Planck 2018 best fit; C_0 = C_1 = 0).

    Made by ``shared/recipes/cosmo_lcdm_spectrum.py`` with camb; for other cosmologies pass your
    own C_ell (e.g. from camb, the ``camb`` extra) to :func:`simulate_cmb`.
    """
    table = _lcdm_table()
    if not 0 <= lmax < table.size:
        raise ValueError(f"the shipped spectrum covers ell <= {table.size - 1}, asked {lmax}")
    return table[: lmax + 1].copy()


def gaussian_alm(cl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Complex alm (healpy layout, lmax = len(cl) - 1) of a Gaussian isotropic field with ``cl``.

    ``<|a_lm|^2> = C_ell``: m = 0 real with variance C_ell, m > 0 complex with C_ell / 2 in each of
    the real and imaginary parts.
    """
    lmax = len(cl) - 1
    sigma = np.sqrt(np.maximum(np.asarray(cl, dtype=np.float64), 0.0))
    alm = np.zeros(hp.Alm.getsize(lmax), dtype=np.complex128)
    # the same numbers as one standard_normal(size) call for the real parts, then one for the
    # imaginary ones (and the same rounding as numpy's complex division by sqrt 2, a multiply by
    # its reciprocal), drawn in per-m blocks into the result: at Nside 2048 (lmax 6143) the
    # index and temporary arrays of the vectorised form took 1.3 GB
    for part in ("real", "imag"):
        for m in range(lmax + 1):
            start = hp.Alm.getidx(lmax, m, m)
            block = sigma[m:] * rng.standard_normal(lmax + 1 - m)
            if m == 0:
                if part == "real":
                    alm.real[start : start + lmax + 1] = block
                continue
            getattr(alm, part)[start : start + lmax + 1 - m] = block * (1.0 / np.sqrt(2.0))
    return alm


DEFAULT_NOISE_UK_ARCMIN = 1.0  # white noise of the default skies (training, evaluation)


def default_fwhm_arcmin(nside: int) -> float:
    """Default beam: 2 pixel sizes (27.5 arcmin at Nside 256), so the map is well sampled."""
    return 2.0 * hp.nside2resol(nside, arcmin=True)


def _beam(nside: int, fwhm_arcmin: float | None) -> np.ndarray:
    """(3 nside,) Gaussian beam b_ell; None: :func:`default_fwhm_arcmin`; 0: no beam."""
    fwhm = default_fwhm_arcmin(nside) if fwhm_arcmin is None else fwhm_arcmin
    return hp.gauss_beam(np.radians(fwhm / 60.0), lmax=3 * nside - 1)


def beamed_lcdm_cl(nside: int, fwhm_arcmin: float | None = None) -> np.ndarray:
    """(3 nside,) C_ell b_ell^2 in muK^2: the LCDM spectrum seen through the Gaussian beam.

    ``fwhm_arcmin``: None: :func:`default_fwhm_arcmin`; 0: no beam.
    """
    return lcdm_cl(3 * nside - 1) * _beam(nside, fwhm_arcmin) ** 2


LCDM_N_S = 0.9649  # the shipped table's scalar tilt (Planck 2018)
_TILT_PIVOT_ELL = 700.0


@dataclass(frozen=True)
class SkyPrior:
    """The statistics of a Gaussian sky: tilted, scaled LCDM, Gaussian beam, white noise.

    Attributes:
        amplitude: factor on C_ell (1.15: +15%).
        n_s: scalar tilt; C_ell gets ``(ell / 700) ** (n_s - LCDM_N_S)`` (module docstring).
        fwhm_arcmin: beam FWHM; None: :func:`default_fwhm_arcmin` of the map's Nside; 0: none.
        noise_uk_arcmin: white noise (muK arcmin).
    """

    amplitude: float = 1.0
    n_s: float = LCDM_N_S
    fwhm_arcmin: float | None = None
    noise_uk_arcmin: float = DEFAULT_NOISE_UK_ARCMIN

    def sky_cl(self, lmax: int) -> np.ndarray:
        """(lmax + 1,) C_ell of the sky before the beam, muK^2."""
        ell = np.maximum(np.arange(lmax + 1), 1)
        tilt = (ell / _TILT_PIVOT_ELL) ** (self.n_s - LCDM_N_S)
        return self.amplitude * lcdm_cl(lmax) * tilt

    def signal_cl(self, nside: int) -> np.ndarray:
        """(3 nside,) C_ell b_ell^2 in muK^2: the sky seen through the beam."""
        return self.sky_cl(3 * nside - 1) * _beam(nside, self.fwhm_arcmin) ** 2

    def total_cl(self, nside: int) -> np.ndarray:
        """(3 nside,) the observed map's C_ell: beamed sky plus the white noise's flat spectrum
        (``(noise in muK rad)^2``; C_0 = C_1 = 0)."""
        noise = np.full(3 * nside, np.radians(self.noise_uk_arcmin / 60.0) ** 2)
        noise[:2] = 0.0
        return self.signal_cl(nside) + noise

    def describe(self) -> str:
        """A short label, e.g. "A 1.15, n_s 0.94, beam 30', noise 5 muK'"."""
        beam = "2 px" if self.fwhm_arcmin is None else f"{self.fwhm_arcmin:g}'"
        return (
            f"A {self.amplitude:g}, n_s {self.n_s:g}, beam {beam}, "
            f"noise {self.noise_uk_arcmin:g} muK'"
        )


@dataclass(frozen=True)
class PriorFamily:
    """Ranges :class:`SkyPrior` are drawn from (uniform in each; a beam list is drawn from).

    Attributes:
        amplitude, n_s, noise_uk_arcmin: (low, high) ranges.
        fwhm_arcmin: (low, high) beam FWHM range in arcmin.
    """

    amplitude: tuple[float, float] = (0.8, 1.2)
    n_s: tuple[float, float] = (0.92, 1.00)
    fwhm_arcmin: tuple[float, float] = (5.0, 60.0)
    noise_uk_arcmin: tuple[float, float] = (0.0, 30.0)

    def draw(self, seed: int) -> SkyPrior:
        """The prior of sky ``seed`` (same seed, same prior)."""
        rng = np.random.default_rng([seed, 2])
        return SkyPrior(
            amplitude=float(rng.uniform(*self.amplitude)),
            n_s=float(rng.uniform(*self.n_s)),
            fwhm_arcmin=float(rng.uniform(*self.fwhm_arcmin)),
            noise_uk_arcmin=float(rng.uniform(*self.noise_uk_arcmin)),
        )


TRAINING_FAMILY = PriorFamily()
"""The priors the bundled networks are trained on (issue 13): beam 5-60', A +-20%, n_s 0.92-1.00,
noise 0-30 muK arcmin."""

TARGET_PRIORS = tuple(
    SkyPrior(amplitude=1.15, n_s=0.94, fwhm_arcmin=fwhm, noise_uk_arcmin=5.0) for fwhm in (30, 60)
)
"""The held-out priors of issue 13's targets (``cosmo-evaluate --prior-family target``): beams 30'
and 60', n_s 0.94, amplitude +15%, 5 muK arcmin noise; not the default prior of the skies the
pipeline assumed before it measured the map."""


def pixel_noise_sigma(nside: int, noise_uk_arcmin: float = DEFAULT_NOISE_UK_ARCMIN) -> float:
    """White-noise standard deviation per pixel, muK, of a ``noise_uk_arcmin`` map."""
    return noise_uk_arcmin / hp.nside2resol(nside, arcmin=True)


def simulate_cmb(
    nside: int,
    seed: int,
    fwhm_arcmin: float | None = None,
    noise_uk_arcmin: float = DEFAULT_NOISE_UK_ARCMIN,
    cl: np.ndarray | None = None,
    prior: SkyPrior | None = None,
) -> np.ndarray:
    """A Gaussian CMB temperature sky, (12 nside^2,) float32 muK, NESTED.

    Args:
        nside: HEALPix resolution.
        seed: same seed, same sky.
        fwhm_arcmin: Gaussian beam FWHM; None: :func:`default_fwhm_arcmin`; 0: no beam.
        noise_uk_arcmin: white-noise level (muK arcmin; per pixel it is this over the pixel side).
        cl: C_ell in muK^2 from ell = 0 (at least ``3 nside``); None: :func:`lcdm_cl`.
        prior: when given, its spectrum, beam and noise replace the three arguments above.
    """
    lmax = 3 * nside - 1
    if prior is not None:
        cl, fwhm_arcmin, noise_uk_arcmin = (
            prior.sky_cl(lmax),
            prior.fwhm_arcmin,
            prior.noise_uk_arcmin,
        )
    cl = lcdm_cl(lmax) if cl is None else np.asarray(cl, dtype=np.float64)[: lmax + 1]
    if cl.size < lmax + 1:
        raise ValueError(f"cl must reach ell = {lmax} for Nside {nside}, got {cl.size} values")
    rng = np.random.default_rng(seed)
    alm = gaussian_alm(cl, rng)
    if fwhm_arcmin != 0:  # 0: b_ell = 1, and almxfl a second of copying at Nside 2048
        alm = hp.almxfl(alm, _beam(nside, fwhm_arcmin))
    sky = hp.reorder(hp.alm2map(alm, nside, lmax=lmax), r2n=True)
    if noise_uk_arcmin > 0:
        sky = sky + rng.normal(0.0, pixel_noise_sigma(nside, noise_uk_arcmin), sky.size)
    return sky.astype(np.float32)


def galactic_cut(nside: int, seed: int, f_sky: float = 0.75, roughness: float = 0.4) -> np.ndarray:
    """(12 nside^2,) bool NESTED, True outside a galactic band with irregular edges.

    Args:
        nside: resolution.
        seed: same seed, same edges.
        f_sky: observed fraction (exact up to one pixel).
        roughness: amplitude of the random field modulating ``|sin b|`` (0: a straight band).
    """
    if not 0.0 < f_sky < 1.0:
        raise ValueError(f"f_sky must be in (0, 1), got {f_sky}")
    rng = np.random.default_rng(seed)
    lmax = min(3 * nside - 1, 40)
    ell = np.arange(lmax + 1)
    smooth = np.exp(-((ell / 12.0) ** 2)) * (ell > 0)
    field = hp.alm2map(gaussian_alm(smooth, rng), nside, lmax=lmax)
    field /= field.std() or 1.0
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    score = np.abs(np.cos(theta)) * np.exp(roughness * field)  # |sin b|, b = 90 deg - theta
    observed = score > np.quantile(score, 1.0 - f_sky)
    return hp.reorder(observed, r2n=True).astype(bool)


def point_source_mask(
    nside: int, seed: int, count: int = 300, radius_arcmin: tuple[float, float] = (5.0, 30.0)
) -> np.ndarray:
    """(12 nside^2,) bool NESTED, False inside ``count`` discs of random radius and position.

    A disc smaller than a pixel still masks the pixel holding its centre.
    """
    rng = np.random.default_rng(seed)
    observed = np.ones(hp.nside2npix(nside), dtype=bool)
    vectors = rng.normal(size=(count, 3))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    radii = np.radians(rng.uniform(*radius_arcmin, size=count) / 60.0)
    for vector, radius in zip(vectors, radii, strict=True):
        observed[hp.query_disc(nside, vector, radius, nest=True)] = False
        observed[hp.vec2pix(nside, *vector, nest=True)] = False
    return observed


def simulate_mask(nside: int, seed: int, f_sky: float = 0.75, sources: int = 300) -> np.ndarray:
    """Galactic cut (``f_sky`` of the sky kept) and ``sources`` point-source holes, NESTED bool."""
    return galactic_cut(nside, seed, f_sky) & point_source_mask(nside, seed + 1, sources)


@dataclass(frozen=True)
class SkySimulation:
    """One simulated observation.

    Attributes:
        truth: (12 nside^2,) float32 muK NESTED, the full sky (CMB + noise).
        observed: (12 nside^2,) bool NESTED, the mask (1 = observed).
        seed: the seed that made it.
    """

    truth: np.ndarray
    observed: np.ndarray
    seed: int

    @property
    def masked(self) -> np.ndarray:
        """The data: ``truth`` with the holes set to 0."""
        return np.where(self.observed, self.truth, 0.0).astype(np.float32)


def simulate_sky(
    nside: int,
    seed: int,
    f_sky: float | tuple[float, float] = 0.75,
    sources: int | None = None,
    fwhm_arcmin: float | None = None,
    noise_uk_arcmin: float = DEFAULT_NOISE_UK_ARCMIN,
    prior: SkyPrior | None = None,
) -> SkySimulation:
    """A CMB sky and a mask from one seed.

    Args:
        nside: resolution.
        seed: same seed, same sky and mask.
        f_sky: the galactic cut's observed fraction, or a (low, high) range to draw it from.
        sources: point-source holes; None: 300 x (nside / 256), at least 20.
        fwhm_arcmin, noise_uk_arcmin, prior: as :func:`simulate_cmb`.
    """
    rng = np.random.default_rng([seed, 1])
    fraction = float(rng.uniform(*f_sky)) if isinstance(f_sky, tuple) else float(f_sky)
    count = max(20, round(300 * nside / 256)) if sources is None else sources
    truth = simulate_cmb(nside, seed, fwhm_arcmin, noise_uk_arcmin, prior=prior)
    return SkySimulation(truth, simulate_mask(nside, seed + 7919, fraction, count), seed)
