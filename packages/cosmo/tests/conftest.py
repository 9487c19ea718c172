"""Shared cosmo test helpers: the dense exact posterior mean the Wiener solvers are judged by, and
the in-process runner of the command lines."""

from __future__ import annotations

from collections.abc import Callable

import healpy as hp
import numpy as np
import pytest
from convsuite_dev.testing import run_cli
from numpy.polynomial.legendre import legval


def _exact_wiener(
    data: np.ndarray, observed: np.ndarray, cl: np.ndarray, noise_sigma: float
) -> np.ndarray:
    """Posterior mean from the dense pixel covariance C(theta) = sum (2l+1)/4pi C_l P_l."""
    nside = hp.npix2nside(data.size)
    vectors = np.stack(hp.pix2vec(nside, np.arange(data.size), nest=True), 1)
    cosines = np.clip(vectors @ vectors.T, -1, 1)
    ell = np.arange(3 * nside)
    covariance = legval(cosines, (2 * ell + 1) / (4 * np.pi) * cl[: ell.size])
    o, h = observed, ~observed
    noisy = covariance[np.ix_(o, o)] + noise_sigma**2 * np.eye(o.sum())
    filled = np.asarray(data, dtype=np.float64).copy()
    filled[h] = covariance[np.ix_(h, o)] @ np.linalg.solve(noisy, filled[o])
    return filled


@pytest.fixture
def exact_wiener() -> Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]:
    """``exact_wiener(data, observed, cl, noise_sigma)``: the dense posterior mean, NESTED."""
    return _exact_wiener


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``invoke(app, *args)``: run a command in-process through core-ops' ``run``, as the console
    script does; returns (exit status, stdout, stderr)."""
    return lambda app, *args: run_cli(app, args, capsys)
