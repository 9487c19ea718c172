"""Evaluation figures: the open-set confusion matrix, the novelty-score histogram, example maps.

Each function returns a :class:`matplotlib.figure.Figure` (from
:func:`convsuite.core_ops.figures.new_figure`): a notebook shows it inline, the CLI and the demo
write it with :func:`convsuite.core_ops.figures.save_figure`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from sklearn.metrics import confusion_matrix

from convsuite.core_ops.figures import new_figure
from convsuite.semicon.data import WaferMap
from convsuite.semicon.monitor import Classification, WaferMonitor

__all__ = ["NOVEL", "confusion_matrix_figure", "examples_figure", "novelty_histogram_figure"]

NOVEL = "novel"
"""Label of the novel maps (true pattern unknown to the monitor, or flagged)."""


def confusion_matrix_figure(
    truth: Sequence[str | None], results: Sequence[Classification], classes: Sequence[str]
) -> Figure:
    """Counts of true pattern (rows; unknown ones as "novel") against the monitor's verdict
    (columns; "novel" when flagged), one cell per pair, annotated.

    Args:
        truth: (N,) true pattern of each map.
        results: (N,) the monitor's classifications of the same maps.
        classes: the monitor's known patterns.
    """
    labels = [*classes, NOVEL]
    true = [t if t in classes else NOVEL for t in truth]
    predicted = [NOVEL if r.is_novel else r.class_name for r in results]
    counts = confusion_matrix(true, predicted, labels=labels)
    fig = new_figure(figsize=(1.0 + 0.6 * len(labels), 0.8 + 0.55 * len(labels)))
    ax = fig.add_subplot()
    ax.imshow(counts, cmap="Blues")
    for (row, column), value in np.ndenumerate(counts):
        if value:
            colour = "white" if value > counts.max() / 2 else "black"
            ax.text(column, row, str(value), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("monitor's verdict")
    ax.set_ylabel("true pattern")
    return fig


def novelty_histogram_figure(
    truth: Sequence[str | None], results: Sequence[Classification], monitor: WaferMonitor
) -> Figure:
    """Histogram of the novelty scores (negative log-likelihood) of known and novel maps, with
    the monitor's threshold.

    Args:
        truth: (N,) true pattern of each map; those outside ``monitor.classes`` are novel.
        results: (N,) the monitor's classifications of the same maps.
        monitor: the monitor (its classes and threshold).
    """
    scores = np.array([r.novelty_score for r in results])
    novel = np.array([t not in monitor.classes for t in truth])
    fig = new_figure(figsize=(6, 3.4))
    ax = fig.add_subplot()
    bins = np.histogram_bin_edges(scores, bins=40)
    ax.hist(scores[~novel], bins=bins, alpha=0.7, label="known patterns")
    if novel.any():
        ax.hist(scores[novel], bins=bins, alpha=0.7, label="novel patterns")
    ax.axvline(monitor.threshold, color="k", ls="--", lw=1, label="threshold")
    ax.set_xlabel("novelty score (negative log-likelihood)")
    ax.set_ylabel("maps")
    ax.legend(fontsize=8)
    return fig


def examples_figure(
    shown: Sequence[tuple[WaferMap, Classification]], threshold: float, columns: int = 4
) -> Figure:
    """Maps binned to 256 x 256 (defective bins black) titled with truth and verdict; flagged
    maps in red.

    Args:
        shown: (map, its classification) pairs; the true pattern is the map's label, or the
            last ``_`` part of its name for unlabelled maps.
        threshold: the novelty threshold, for the title.
        columns: maps per row.
    """
    rows = -(-len(shown) // columns)
    fig = new_figure(figsize=(3 * columns, 3.2 * rows), dpi=100)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, (wafer, result) in zip(axes.flat, shown, strict=False):
        ax.imshow(wafer.binned(256) > 0, cmap="gray_r", interpolation="nearest")
        ax.add_patch(Circle((127.5, 127.5), 128, fill=False, color="0.6", lw=0.8))
        verdict = "NOVEL" if result.is_novel else f"{result.class_name} {result.probability:.2f}"
        truth = wafer.label or wafer.name.split("_")[-1]
        ax.set_title(f"{truth}\n-> {verdict}", fontsize=9, color="red" if result.is_novel else "k")
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(f"novelty threshold {threshold:.3g} (higher score: less like the known classes)")
    return fig
