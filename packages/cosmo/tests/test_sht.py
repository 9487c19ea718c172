"""ducc0 transforms against healpy's (the conventions the pipeline relied on before)."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest

from convsuite.cosmo.data import sht


@pytest.mark.parametrize("nside", [16, 32])
@pytest.mark.parametrize("iterations", [0, 3])
def test_map2alm_and_anafast_equal_healpy(nside: int, iterations: int) -> None:
    ring_map = np.random.default_rng(nside).normal(size=12 * nside**2)
    for lmax in (nside, 3 * nside - 1):  # band-limited below the grid's and the full band
        expected = hp.map2alm(ring_map, lmax=lmax, iter=iterations)
        np.testing.assert_allclose(
            sht.map2alm(ring_map, lmax, iterations), expected, rtol=0, atol=1e-12
        )
        np.testing.assert_allclose(
            sht.anafast(ring_map, lmax, iterations),
            hp.anafast(ring_map, lmax=lmax, iter=iterations),
            rtol=1e-10,
        )


def test_iterations_refine_the_analysis() -> None:
    """Three iterations bring a band-limited map's alm closer to its truth than none (lmax 2
    nside, where the Jacobi iteration converges fast: 1.8e-3 -> 3.4e-6)."""
    nside, lmax = 16, 32
    truth = hp.map2alm(np.random.default_rng(1).normal(size=12 * nside**2), lmax=lmax)
    ring_map = sht.alm2map(truth, nside, lmax)
    errors = [np.abs(sht.map2alm(ring_map, lmax, n) - truth).max() for n in (0, 3)]
    assert errors[1] < 0.01 * errors[0]


@pytest.mark.parametrize("nside", [16, 32])
def test_alm2map_equals_healpy(nside: int) -> None:
    lmax = 3 * nside - 1
    alm = hp.map2alm(np.random.default_rng(2).normal(size=12 * nside**2), lmax=lmax)
    expected = hp.alm2map(alm, nside, lmax=lmax)
    np.testing.assert_allclose(sht.alm2map(alm, nside, lmax), expected, rtol=0, atol=1e-11)
