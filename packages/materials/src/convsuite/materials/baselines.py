"""Baselines scored like the VAE: PCA and NMF reconstructions through hyperspy's ``decomposition``,
and the median of the surrounding ring of pixels.

All take the preprocessed per-pixel cube (y, x, E) on the network's grid, scaled to [0, 1]
(:class:`~convsuite.materials.data.preprocess.Prepared` ``.own``) and return its reconstruction,
which :func:`~convsuite.materials.scoring.pearson_distance` then scores.

Traps of hyperspy 2.5 avoided here: ``decomposition(algorithm="sklearn_pca")`` leaves the signal's
data with the mean spectrum added (so it runs on a copy), and ``get_decomposition_model`` after
``sklearn_pca`` on a 2-D map raises a reshape ``ValueError``; the model is rebuilt from
``learning_results`` (loadings @ factors.T + mean). The tests check it against scikit-learn.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from convsuite.materials.scoring import neighbour_median

__all__ = [
    "decomposition_reconstruction",
    "nmf_reconstruction",
    "pca_reconstruction",
    "ring_median",
]


def decomposition_reconstruction(cube: np.ndarray, components: int, algorithm: str) -> np.ndarray:
    """Rank-``components`` model of ``cube`` (y, x, E) by hyperspy's decomposition, (y, x, E)."""
    import exspy

    signal = exspy.signals.EELSSpectrum(np.array(cube, dtype=np.float64))  # a copy: it is changed
    logging.getLogger("hyperspy").setLevel(max(logging.getLogger("hyperspy").level, 40))
    options = {"max_iter": 400, "init": "nndsvda"} if algorithm == "NMF" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notes of NMF
        signal.decomposition(
            algorithm=algorithm, output_dimension=components, print_info=False, **options
        )
    results = signal.learning_results
    model = results.loadings[:, :components] @ results.factors[:, :components].T
    if getattr(results, "mean", None) is not None:
        model = model + results.mean
    return model.reshape(cube.shape).astype(np.float32)


def pca_reconstruction(cube: np.ndarray, components: int) -> np.ndarray:
    """PCA (hyperspy ``sklearn_pca``, centred) reconstruction with ``components`` components."""
    return decomposition_reconstruction(cube, components, "sklearn_pca")


def nmf_reconstruction(cube: np.ndarray, components: int) -> np.ndarray:
    """NMF (hyperspy ``NMF``) reconstruction with ``components`` components; ``cube`` >= 0."""
    return decomposition_reconstruction(np.clip(cube, 0, None), components, "NMF")


def ring_median(cube: np.ndarray) -> np.ndarray:
    """Each pixel's spectrum predicted by the channel-wise median of its 8 neighbours (y, x, E);
    an edge pixel's of its 3 or 5 neighbours inside the map."""
    return neighbour_median(cube)
