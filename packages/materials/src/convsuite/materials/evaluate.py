"""Evaluation against the simulator's ground truth: the VAE beside PCA-3/4/5, NMF-3/4/5 and the
ring median, per shift magnitude, with the same scoring (1 - Pearson in the window, Otsu).

For each magnitude a 64 x 64 cube (second phase, mixed valence, thickness wedge, drift: none of it
anomalous) gets ``count`` single-pixel whole-edge Fe L shifts (up or down); a cube with the same
normal variation and no anomaly measures the false alarms. F1, precision and recall are of the
Otsu mask; AUROC of the scores (scikit-learn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convsuite.materials.baselines import nmf_reconstruction, pca_reconstruction, ring_median
from convsuite.materials.data.io import energy_axis
from convsuite.materials.data.preprocess import prepare
from convsuite.materials.data.simulate import AnomalySpec, simulate_cube
from convsuite.materials.infer import detect, grid_of
from convsuite.materials.model import EELSVAE
from convsuite.materials.scoring import (
    DEFAULT_WINDOW_EV,
    otsu_threshold,
    pearson_distance,
    window_channels,
)

__all__ = ["BASELINES", "SHIFTS_EV", "classification", "evaluate", "score_methods"]

SHIFTS_EV = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 11.0)
BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "PCA-3": lambda c: pca_reconstruction(c, 3),
    "PCA-4": lambda c: pca_reconstruction(c, 4),
    "PCA-5": lambda c: pca_reconstruction(c, 5),
    "NMF-3": lambda c: nmf_reconstruction(c, 3),
    "NMF-4": lambda c: nmf_reconstruction(c, 4),
    "NMF-5": lambda c: nmf_reconstruction(c, 5),
    "ring median": ring_median,
}


def classification(scores: np.ndarray, mask: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """F1, precision, recall of ``mask`` and AUROC of ``scores`` against ``truth`` (all (y, x))."""
    from sklearn.metrics import roc_auc_score

    tp = float((mask & truth).sum())
    precision = tp / max(1.0, float(mask.sum()))
    recall = tp / max(1.0, float(truth.sum()))
    f1 = 2 * tp / max(1.0, float(mask.sum() + truth.sum()))
    both = truth.any() and (~truth).any()
    auroc = float(roc_auc_score(truth.ravel(), scores.ravel())) if both else float("nan")
    return {"f1": f1, "precision": precision, "recall": recall, "auroc": auroc}


def score_methods(
    cube: Any,
    net: EELSVAE,
    window: tuple[float, float] = DEFAULT_WINDOW_EV,
    fit: bool = False,
    fit_seconds: float = 45.0,
    methods: Sequence[str] = tuple(BASELINES),
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{method: (scores, Otsu mask)} of the VAE and the baselines on one cube."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    found = detect(cube, net, window=window, fit=fit, fit_seconds=fit_seconds)
    out["VAE"] = (found.scores, found.mask)
    grid = grid_of(net)
    own = prepare(cube.data, energy_axis(cube), grid).own
    channels = window_channels(grid.values, window)
    for name in methods:
        scores = pearson_distance(own, BASELINES[name](own), channels)
        out[name] = (scores, scores > otsu_threshold(scores))
    return out


def evaluate(
    net: EELSVAE,
    shifts: Sequence[float] = SHIFTS_EV,
    count: int = 500,
    size: int = 64,
    seed: int = 0,
    fit: bool = False,
    fit_seconds: float = 45.0,
    methods: Sequence[str] = tuple(BASELINES),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Scores of every method per shift magnitude, and the false alarms on a normal-only cube.

    Returns:
        ``{"shifts": {shift: {method: metrics}}, "normal_only": {method: flagged fraction},
        "histograms": {method: (normal scores, anomalous scores)} at the 2 eV cube}``;
        evaluation seeds are ``seed + 10^5 + k`` (training uses other seeds).
    """
    results: dict[str, Any] = {"shifts": {}, "normal_only": {}, "histograms": {}}
    for k, shift in enumerate(shifts):
        cube = simulate_cube(
            (size, size), seed=seed + 100_000 + k, anomalies=[AnomalySpec("shift", shift, count)]
        )
        truth = cube.metadata.Anomalies.mask
        scored = score_methods(cube, net, fit=fit, fit_seconds=fit_seconds, methods=methods)
        results["shifts"][float(shift)] = {
            name: classification(s, m, truth) for name, (s, m) in scored.items()
        }
        if abs(shift - 2.0) < 1e-9 or (k == 0 and 2.0 not in shifts):
            results["histograms"] = {
                name: (1 - s[~truth], 1 - s[truth]) for name, (s, _) in scored.items()
            }
        if progress is not None:
            progress(f"shift {shift:g} eV")
    normal = simulate_cube((size, size), seed=seed + 200_000, anomalies=())
    scored = score_methods(normal, net, fit=fit, fit_seconds=fit_seconds, methods=methods)
    results["normal_only"] = {name: float(m.mean()) for name, (_, m) in scored.items()}
    return results
