"""PCA and NMF through hyperspy's decomposition against scikit-learn; the ring median."""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import NMF, PCA

from convsuite.materials.baselines import nmf_reconstruction, pca_reconstruction, ring_median


def _cube(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = rng.random((4, 50))
    weights = rng.random((12, 10, 4))
    return (weights @ basis + 0.01 * rng.random((12, 10, 50))).astype(np.float32)


def test_pca_matches_scikit_learn_on_a_2d_map() -> None:
    cube = _cube()
    flat = cube.reshape(-1, 50).astype(np.float64)
    for k in (3, 4, 5):
        pca = PCA(k).fit(flat)
        reference = pca.inverse_transform(pca.transform(flat)).reshape(cube.shape)
        np.testing.assert_allclose(pca_reconstruction(cube, k), reference, atol=1e-4)
    # the input is left alone (hyperspy adds the mean to the data it decomposes)
    np.testing.assert_array_equal(cube, _cube())


def test_nmf_reconstructs_like_scikit_learn() -> None:
    cube = _cube(1)
    flat = cube.reshape(-1, 50).astype(np.float64)
    nmf = NMF(4, init="nndsvda", max_iter=400)
    reference = (nmf.fit_transform(flat) @ nmf.components_).reshape(cube.shape)
    ours = nmf_reconstruction(cube, 4)
    assert np.abs(ours - reference).mean() < 0.01
    assert np.abs(ours - cube).mean() < 0.02


def test_ring_median_ignores_the_centre_pixel() -> None:
    cube = np.ones((5, 5, 3), np.float32)
    cube[2, 2] = 100.0
    out = ring_median(cube)
    np.testing.assert_array_equal(out[2, 2], [1.0, 1.0, 1.0])
    dense = np.median(np.delete(cube[1:4, 1:4].reshape(9, 3), 4, axis=0), axis=0)
    np.testing.assert_array_equal(out[2, 2], dense)
