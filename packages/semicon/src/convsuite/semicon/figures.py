"""Evaluation figures: the open-set confusion matrix and the novelty-score histogram (PNG)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib
import numpy as np
from sklearn.metrics import confusion_matrix

from convsuite.core_ops.io import atomic_path
from convsuite.semicon.monitor import Classification, WaferMonitor

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the non-interactive backend)

NOVEL = "novel"


def _save(fig: plt.Figure, path: str | os.PathLike[str]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def save_confusion_matrix(
    path: str | os.PathLike[str],
    truth: Sequence[str | None],
    results: Sequence[Classification],
    classes: Sequence[str],
) -> None:
    """Rows: true pattern (unknown ones as "novel"); columns: the monitor's verdict, "novel" when flagged."""
    labels = [*classes, NOVEL]
    true = [t if t in classes else NOVEL for t in truth]
    predicted = [NOVEL if r.is_novel else r.class_name for r in results]
    counts = confusion_matrix(true, predicted, labels=labels)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.55 * len(labels)))
    ax.imshow(counts, cmap="Blues")
    for (row, column), value in np.ndenumerate(counts):
        if value:
            colour = "white" if value > counts.max() / 2 else "black"
            ax.text(column, row, str(value), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("monitor's verdict")
    ax.set_ylabel("true pattern")
    fig.tight_layout()
    _save(fig, path)


def save_novelty_histogram(
    path: str | os.PathLike[str],
    truth: Sequence[str | None],
    results: Sequence[Classification],
    monitor: WaferMonitor,
) -> None:
    """Novelty scores (negative log-likelihood) of known and novel maps, with the threshold."""
    scores = np.array([r.novelty_score for r in results])
    novel = np.array([t not in monitor.classes for t in truth])
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.histogram_bin_edges(scores, bins=40)
    ax.hist(scores[~novel], bins=bins, alpha=0.7, label="known patterns")
    if novel.any():
        ax.hist(scores[novel], bins=bins, alpha=0.7, label="novel patterns")
    ax.axvline(monitor.threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set_xlabel("novelty score (negative log-likelihood)")
    ax.set_ylabel("maps")
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
