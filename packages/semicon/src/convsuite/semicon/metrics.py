"""Open-set recognition metrics: closed-set accuracy and macro-F1, AUROC known-vs-novel, OSCR.

Closed-set scores are over maps of the known classes only. Novelty scores are "higher = more novel"
throughout (the Gaussian-mixture negative log-likelihood, ``1 - max softmax``).

OSCR, the open-set classification rate (Dhamija, Günther & Boult, "Reducing Network Agnostophobia",
NeurIPS 2018): a map is accepted as known when its novelty score is at most a threshold t. As t
sweeps all scores,

* the correct classification rate CCR(t) is the share of known-class maps that are accepted *and*
  classified correctly, and
* the false positive rate FPR(t) is the share of novel maps that are accepted;

OSCR is the area under CCR against FPR (from (0, 0) to (1, closed-set accuracy)), by the
trapezoidal rule, so ties between known and novel scores are interpolated as in ROC AUC. With every
known map classified correctly it equals the AUROC of the novelty score.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

__all__ = [
    "closed_set_accuracy",
    "macro_f1",
    "novelty_auroc",
    "open_set_report",
    "oscr",
    "oscr_curve",
]


def closed_set_accuracy(y_true: Sequence, y_pred: Sequence) -> float:
    """Share of known-class maps whose predicted class is the true one."""
    return float(accuracy_score(y_true, y_pred))


def macro_f1(y_true: Sequence, y_pred: Sequence, labels: Sequence | None = None) -> float:
    """F1 averaged over classes with equal weight (classes in ``labels``, default: those present)."""
    return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))


def novelty_auroc(scores: Sequence[float], is_novel: Sequence[bool]) -> float:
    """Area under the ROC curve of ``scores`` separating novel (positive) from known maps."""
    is_novel = np.asarray(is_novel, dtype=bool)
    if is_novel.all() or not is_novel.any():
        raise ValueError("AUROC needs both known and novel maps")
    return float(roc_auc_score(is_novel, np.asarray(scores, dtype=np.float64)))


def oscr_curve(
    known_scores: Sequence[float], known_correct: Sequence[bool], novel_scores: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """The OSCR curve: (FPR, CCR) at every threshold, from (0, 0) upwards.

    Args:
        known_scores: (N_K,) novelty scores of the known-class maps.
        known_correct: (N_K,) whether each known map's predicted class is right.
        novel_scores: (N_U,) novelty scores of the novel maps.

    Returns:
        ``(fpr, ccr)``, each (T + 1,) non-decreasing: at t = -inf (nothing accepted) and at each of
        the T distinct scores t (maps with score <= t accepted).
    """
    known = np.asarray(known_scores, dtype=np.float64)
    correct = np.asarray(known_correct, dtype=bool)
    novel = np.asarray(novel_scores, dtype=np.float64)
    if known.shape != correct.shape or known.ndim != 1:
        raise ValueError("known_scores and known_correct must be (N_K,) arrays of one length")
    if known.size == 0 or novel.size == 0:
        raise ValueError("OSCR needs both known and novel maps")
    thresholds = np.unique(np.concatenate([known, novel]))
    ccr = np.searchsorted(np.sort(known[correct]), thresholds, side="right") / known.size
    fpr = np.searchsorted(np.sort(novel), thresholds, side="right") / novel.size
    return np.concatenate([[0.0], fpr]), np.concatenate([[0.0], ccr])


def oscr(
    known_scores: Sequence[float], known_correct: Sequence[bool], novel_scores: Sequence[float]
) -> float:
    """Open-set classification rate: the area under :func:`oscr_curve` (see the module docstring)."""
    fpr, ccr = oscr_curve(known_scores, known_correct, novel_scores)
    return float(np.sum(np.diff(fpr) * (ccr[1:] + ccr[:-1]) / 2.0))


def open_set_report(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    scores: Sequence[float],
    known_classes: Sequence[str],
    threshold: float | None = None,
) -> dict[str, float]:
    """All the figures at once for a labelled test stream of known and novel maps.

    Args:
        y_true: (N,) true pattern names; a name not in ``known_classes`` marks a novel map.
        y_pred: (N,) predicted (known) class names.
        scores: (N,) novelty scores, higher = more novel.
        known_classes: the classes the network was trained on.
        threshold: the detector's threshold, for the false-alarm and detection rates.

    Returns:
        ``accuracy`` and ``macro_f1`` on the known maps, ``auroc`` and ``oscr`` (when the stream
        holds novel maps), and with a threshold ``false_alarm_rate`` (known maps flagged) and
        ``detection_rate`` (novel maps flagged).
    """
    y_true, y_pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
    scores = np.asarray(scores, dtype=np.float64)
    novel = ~np.isin(y_true, list(known_classes))
    known = ~novel
    report: dict[str, float] = {}
    if known.any():
        report["accuracy"] = closed_set_accuracy(y_true[known], y_pred[known])
        report["macro_f1"] = macro_f1(y_true[known], y_pred[known])
    if known.any() and novel.any():
        report["auroc"] = novelty_auroc(scores, novel)
        correct = (y_true[known] == y_pred[known]).astype(bool)
        report["oscr"] = oscr(scores[known], correct, scores[novel])
    if threshold is not None:
        if known.any():
            report["false_alarm_rate"] = float(np.mean(scores[known] > threshold))
        if novel.any():
            report["detection_rate"] = float(np.mean(scores[novel] > threshold))
    return report
