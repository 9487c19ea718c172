"""Quality-assessment metrics of CASP (Igashov et al. 2021, section 3.2): correlations of predicted
with true scores per model, pooled per target and of the global scores, z-scores and top-1 loss."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

__all__ = ["assessment_metrics", "pearson", "spearman"]


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r of finite pairs; NaN when either side is constant or fewer than 3 pairs."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation, NaN as :func:`pearson`."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    return float(stats.spearmanr(x[ok], y[ok]).statistic)


def assessment_metrics(
    predicted: Sequence[np.ndarray],
    true: Sequence[np.ndarray],
    targets: Sequence[str],
    global_predicted: Sequence[float] | None = None,
) -> dict[str, float]:
    """Local and global agreement of predicted with true per-residue scores.

    Args:
        predicted: (R_i,) predicted residue scores of each model.
        true: (R_i,) true residue scores (lDDT) of each model.
        targets: the target (native) each model belongs to.
        global_predicted: each model's predicted global score when the method gives its own
            (VoroMQA's is atom-weighted); default the mean of its residue scores.

    Returns:
        ``residue_pearson_per_model`` (mean over models), ``residue_pearson_per_target`` and
        ``residue_spearman_per_target`` (residues of all models of a target pooled; mean over
        targets), ``global_pearson`` (model means, all targets pooled), ``global_pearson_per_target``,
        ``global_spearman_per_target`` (means over targets), ``top1_loss`` (true global score of the
        best model minus that of the top-ranked one) and ``top1_zscore`` (z-score of the
        top-ranked model's true score among its target's models), both means over targets.
    """
    targets = np.asarray(targets)
    global_pred = (
        np.array([np.nanmean(p) for p in predicted])
        if global_predicted is None
        else np.asarray(global_predicted, dtype=float)
    )
    global_true = np.array([np.nanmean(t) for t in true])
    per_target: dict[str, list[float]] = {
        k: []
        for k in (
            "residue_pearson_per_target",
            "residue_spearman_per_target",
            "global_pearson_per_target",
            "global_spearman_per_target",
            "top1_loss",
            "top1_zscore",
        )
    }
    for target in np.unique(targets):
        rows = np.flatnonzero(targets == target)
        pooled_pred = np.concatenate([predicted[i] for i in rows])
        pooled_true = np.concatenate([true[i] for i in rows])
        per_target["residue_pearson_per_target"].append(pearson(pooled_pred, pooled_true))
        per_target["residue_spearman_per_target"].append(spearman(pooled_pred, pooled_true))
        per_target["global_pearson_per_target"].append(
            pearson(global_pred[rows], global_true[rows])
        )
        per_target["global_spearman_per_target"].append(
            spearman(global_pred[rows], global_true[rows])
        )
        chosen = global_true[rows][np.argmax(global_pred[rows])]
        per_target["top1_loss"].append(float(global_true[rows].max() - chosen))
        spread = global_true[rows].std()
        per_target["top1_zscore"].append(
            float((chosen - global_true[rows].mean()) / spread) if spread > 0 else float("nan")
        )
    out = {
        "residue_pearson_per_model": float(
            np.nanmean([pearson(p, t) for p, t in zip(predicted, true, strict=True)])
        ),
        "global_pearson": pearson(global_pred, global_true),
    }
    out.update({k: float(np.nanmean(v)) for k, v in per_target.items()})
    out["models"] = float(len(predicted))
    out["targets"] = float(len(np.unique(targets)))
    return out
