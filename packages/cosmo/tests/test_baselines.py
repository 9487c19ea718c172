"""Diffusive inpainting, and the CG Wiener filter against the dense exact posterior mean."""

from __future__ import annotations

import healpy as hp
import numpy as np
from numpy.polynomial.legendre import legval

from convsuite.cosmo.baselines import WienerFilter, diffusive_inpaint
from convsuite.cosmo.data import galactic_cut, gaussian_alm, lcdm_cl

NSIDE = 8
LMAX = 3 * NSIDE - 1


def _sky(seed: int) -> np.ndarray:
    alm = gaussian_alm(lcdm_cl(LMAX), np.random.default_rng(seed))
    return hp.reorder(hp.alm2map(alm, NSIDE, lmax=LMAX), r2n=True)


def _exact_wiener(sky: np.ndarray, observed: np.ndarray, sigma: float) -> np.ndarray:
    """Posterior mean from the dense pixel covariance C(theta) = sum (2l+1)/4pi C_l P_l."""
    vectors = np.stack(hp.pix2vec(NSIDE, np.arange(sky.size), nest=True), 1)
    cosines = np.clip(vectors @ vectors.T, -1, 1)
    covariance = legval(cosines, (2 * np.arange(LMAX + 1) + 1) / (4 * np.pi) * lcdm_cl(LMAX))
    o, h = observed, ~observed
    noisy = covariance[np.ix_(o, o)] + sigma**2 * np.eye(o.sum())
    filled = sky.copy()
    filled[h] = covariance[np.ix_(h, o)] @ np.linalg.solve(noisy, sky[o])
    return filled


def test_diffusive_keeps_data_and_beats_the_mean_fill() -> None:
    sky, observed = _sky(0), galactic_cut(NSIDE, 0, 0.7)
    filled = diffusive_inpaint(np.where(observed, sky, 0), observed)
    np.testing.assert_array_equal(filled[observed], sky[observed])
    holes = ~observed
    assert np.mean((filled - sky)[holes] ** 2) < 0.9 * np.mean(
        (sky[holes] - sky[observed].mean()) ** 2
    )


def test_wiener_filter_matches_the_exact_posterior_mean_and_beats_diffusion() -> None:
    sigma = 1.0
    errors = {"cg": [], "exact": [], "diffusive": [], "constrained": []}
    for seed in range(3):
        sky, observed = _sky(seed), galactic_cut(NSIDE, seed, 0.7)
        holes = ~observed
        wiener = WienerFilter(observed, lcdm_cl(LMAX), sigma, tol=1e-7, max_iterations=300)
        cg = wiener.inpaint(sky)
        exact = _exact_wiener(sky, observed, sigma)
        np.testing.assert_allclose(cg[holes], exact[holes], atol=0.02 * sky.std())
        realization = wiener.constrained_realization(sky, seed=100 + seed).signal
        for name, filled in (("cg", cg), ("exact", exact), ("constrained", realization)):
            errors[name].append(np.mean((filled - sky)[holes] ** 2))
        errors["diffusive"].append(np.mean((diffusive_inpaint(sky, observed) - sky)[holes] ** 2))
    mse = {name: np.mean(values) for name, values in errors.items()}
    assert mse["cg"] < 0.8 * mse["diffusive"]
    # a posterior sample: about twice the posterior mean's error
    assert 1.4 < mse["constrained"] / mse["exact"] < 2.8
