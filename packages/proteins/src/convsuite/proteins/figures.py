"""Figures (``matplotlib.figure.Figure`` objects; the CLI, demo and notebook save or show them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from convsuite.core_ops.figures import new_figure
from convsuite.proteins.data.decoyset import DecoySet
from convsuite.proteins.metrics import pearson

__all__ = ["plot_correlations", "plot_residue_scores"]


def plot_correlations(decoys: DecoySet, predictions: Mapping[str, Sequence[np.ndarray]]) -> Figure:
    """Predicted against true global scores (top) and residue scores (bottom), per method."""
    methods = list(predictions)
    figure = new_figure(figsize=(3.2 * len(methods), 6.2))
    axes = figure.subplots(2, len(methods), squeeze=False)
    true_global = np.array([t.mean() for t in decoys.targets])
    true_local = np.concatenate(decoys.targets)
    natives = sorted(set(decoys.natives))
    colour = np.array([natives.index(n) for n in decoys.natives])
    for column, method in enumerate(methods):
        values = predictions[method]
        global_pred = np.array([v.mean() for v in values])
        top = axes[0, column]
        top.scatter(true_global, global_pred, c=colour, cmap="tab20", s=10)
        top.set_title(f"{method}: global r {pearson(global_pred, true_global):.2f}")
        top.set_xlabel("true global lDDT")
        local_pred = np.concatenate(values)
        bottom = axes[1, column]
        bottom.hexbin(true_local, local_pred, gridsize=30, bins="log", cmap="viridis")
        bottom.set_title(f"residues: r {pearson(local_pred, true_local):.2f}")
        bottom.set_xlabel("true residue lDDT")
        if column == 0:
            top.set_ylabel("predicted")
            bottom.set_ylabel("predicted")
    return figure


def plot_residue_scores(
    predicted: np.ndarray, true: np.ndarray | None = None, title: str = ""
) -> Figure:
    """Predicted residue scores along the chain, with the true lDDT when known."""
    figure = new_figure(figsize=(8, 3))
    axis = figure.subplots()
    index = np.arange(len(predicted))
    axis.plot(index, predicted, label="S-GCN prediction", color="tab:blue")
    if true is not None:
        axis.plot(index, true, label="true lDDT", color="black", linestyle="--")
        axis.set_title(f"{title} (per-residue r {pearson(predicted, true):.2f})")
    else:
        axis.set_title(title)
    axis.set_xlabel("residue")
    axis.set_ylabel("quality (1 = correct)")
    axis.set_ylim(0, 1.05)
    axis.legend(loc="lower left")
    return figure
