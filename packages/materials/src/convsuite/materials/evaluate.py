"""Evaluation against the simulator's ground truth: the VAE beside PCA-3/4/5, NMF-3/4/5, the ring
median and the half-ring median, per shift magnitude, with the same scoring and the same threshold
for all.

Every model is scored three ways: against its reconstruction (``plain``, the reference's score),
against its reconstruction corrected by its neighbours' median residual (``local``), and
``either`` (the larger robust z of the two, the default of
:func:`~convsuite.materials.infer.detect`; see :mod:`~convsuite.materials.scoring`); the ring
median (the 8 neighbours' median spectrum) is scored as it is, and the half-ring median is the
local reference of a model that reconstructs nothing (each pixel against the median spectrum of
its best-matching half-ring of 5 neighbours: what a model's local score tends to when its
reconstruction carries no information, a strong simple baseline on single-pixel anomalies).
Method names are ``"<model> <reference>"`` (``"VAE local"``, ``"PCA-4 plain"``, ``"VAE
either"``...), ``"ring median"`` and ``"half-ring median"``.

For each magnitude a 64 x 64 cube (second phase, mixed valence, thickness wedge, drift: none of it
anomalous) gets ``count`` single-pixel whole-edge Fe L shifts (up or down); a cube with the same
normal variation and no anomaly measures the false alarms, and cubes with 2 eV shifts in clusters
of ``CLUSTERS`` pixels (9 and 25) show what the local reference costs on clusters. F1, precision and recall
are of the thresholded mask; AUROC of the scores (scikit-learn).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from convsuite.materials.baselines import nmf_reconstruction, pca_reconstruction, ring_median
from convsuite.materials.data.io import energy_axis
from convsuite.materials.data.preprocess import prepare
from convsuite.materials.data.simulate import AnomalySpec, simulate_cube
from convsuite.materials.infer import adapt, detect, grid_of
from convsuite.materials.model import EELSVAE
from convsuite.materials.scoring import (
    DEFAULT_FALSE_ALARM,
    DEFAULT_WINDOW_EV,
    REFERENCES,
    either_score,
    pearson_distance,
    reference_threshold,
    score_pixels,
    window_channels,
)

__all__ = ["BASELINES", "CLUSTERS", "SHIFTS_EV", "classification", "evaluate", "score_methods"]

SHIFTS_EV = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 8.0, 11.0)
CLUSTERS = (9, 25)  # pixels per cluster in the cluster cubes
BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "PCA-3": lambda c: pca_reconstruction(c, 3),
    "PCA-4": lambda c: pca_reconstruction(c, 4),
    "PCA-5": lambda c: pca_reconstruction(c, 5),
    "NMF-3": lambda c: nmf_reconstruction(c, 3),
    "NMF-4": lambda c: nmf_reconstruction(c, 4),
    "NMF-5": lambda c: nmf_reconstruction(c, 5),
}
_NAMES = {"local": "local", "network": "plain", "either": "either"}


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


def oracle_f1(scores: np.ndarray, truth: np.ndarray) -> float:
    """The best F1 of ``scores`` over every threshold, chosen with ``truth`` (both (y, x)): what
    a perfect threshold rule could reach, so it ranks scores apart from their calibration."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(truth.ravel(), scores.ravel())
    return float((2 * precision * recall / np.maximum(precision + recall, 1e-12)).max())


def score_methods(
    cube: Any,
    net: EELSVAE,
    window: tuple[float, float] = DEFAULT_WINDOW_EV,
    fit: bool = False,
    fit_seconds: float = 45.0,
    methods: Sequence[str] = tuple(BASELINES),
    threshold_method: str = "null",
    false_alarm: float = DEFAULT_FALSE_ALARM,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{method: (scores, mask)} of the VAE, the ``methods`` baselines, the ring median and the
    half-ring median on one cube, each model with every reference (see the module); the VAE
    fine-tuned first if ``fit``.
    """
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    tuned = adapt(cube, net, fit_seconds)[0] if fit and fit_seconds > 0 else net
    for reference in REFERENCES:
        found = detect(
            cube,
            tuned,
            window=window,
            fit=False,
            threshold_method=threshold_method,
            false_alarm=false_alarm,
            reference=reference,
        )
        out[f"VAE {_NAMES[reference]}"] = (found.scores, found.mask)
    grid = grid_of(net)
    own = prepare(cube.data, energy_axis(cube), grid).own
    channels = window_channels(grid.values, window)

    def thresholded(scores: np.ndarray, reference: str = "network") -> tuple[np.ndarray, ...]:
        cut = reference_threshold(scores, reference, threshold_method, false_alarm)
        return scores, scores > cut

    for name in methods:
        reconstruction = BASELINES[name](own)
        maps = {
            reference: score_pixels(own, reconstruction, channels, reference)
            for reference in ("local", "network")
        }
        maps["either"] = either_score(maps["local"], maps["network"])
        for reference in REFERENCES:
            out[f"{name} {_NAMES[reference]}"] = thresholded(maps[reference], reference)
    out["ring median"] = thresholded(pearson_distance(own, ring_median(own), channels))
    nothing = score_pixels(own, np.zeros_like(own), channels, "local")
    out["half-ring median"] = thresholded(nothing, "local")
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
    threshold_method: str = "null",
    false_alarm: float = DEFAULT_FALSE_ALARM,
) -> dict[str, Any]:
    """Scores of every method per shift magnitude, on 2 eV clusters, and the false alarms on a
    normal-only cube.

    Returns:
        ``{"shifts": {shift: {method: metrics}}, "clusters": {size: {method: metrics}},
        "normal_only": {method: flagged fraction}, "histograms": {method: (normal scores,
        anomalous scores)} at the 2 eV cube}``; evaluation seeds are ``seed + 10^5 + k``, the
        normal-only cube ``seed + 2 * 10^5``, the cluster cubes ``seed + 3 * 10^5 + k`` (training
        uses other seeds).
    """
    options = {
        "fit": fit,
        "fit_seconds": fit_seconds,
        "methods": methods,
        "threshold_method": threshold_method,
        "false_alarm": false_alarm,
    }
    results: dict[str, Any] = {"shifts": {}, "clusters": {}, "normal_only": {}, "histograms": {}}
    for k, shift in enumerate(shifts):
        cube = simulate_cube(
            (size, size), seed=seed + 100_000 + k, anomalies=[AnomalySpec("shift", shift, count)]
        )
        truth = cube.metadata.Anomalies.mask
        scored = score_methods(cube, net, **options)
        results["shifts"][float(shift)] = {
            name: classification(s, m, truth) for name, (s, m) in scored.items()
        }
        if abs(shift - 2.0) < 1e-9 or (k == 0 and 2.0 not in shifts):
            results["histograms"] = {  # Pearson r (the either scores are z values, left out)
                name: (1 - s[~truth], 1 - s[truth])
                for name, (s, _) in scored.items()
                if not name.endswith("either")
            }
        if progress is not None:
            progress(f"shift {shift:g} eV")
    for k, cluster in enumerate(CLUSTERS):
        clusters = simulate_cube(
            (size, size),
            seed=seed + 300_000 + k,
            anomalies=[AnomalySpec("shift", 2.0, count, cluster=cluster)],
        )
        truth = clusters.metadata.Anomalies.mask
        scored = score_methods(clusters, net, **options)
        results["clusters"][cluster] = {
            name: classification(s, m, truth) for name, (s, m) in scored.items()
        }
    normal = simulate_cube((size, size), seed=seed + 200_000, anomalies=())
    scored = score_methods(normal, net, **options)
    results["normal_only"] = {name: float(m.mean()) for name, (_, m) in scored.items()}
    return results
