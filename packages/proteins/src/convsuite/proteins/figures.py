"""Figures (``matplotlib.figure.Figure`` objects; the CLI, demo and notebook save or show them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from convsuite.core_ops.figures import new_figure
from convsuite.proteins.data.decoyset import DecoySet
from convsuite.proteins.metrics import pearson

__all__ = ["plot_correlations", "plot_residue_scores", "plot_structure_quality"]


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


def plot_structure_quality(
    ca: np.ndarray, predicted: np.ndarray, true: np.ndarray | None = None, title: str = ""
) -> Figure:
    """The C-alpha trace seen along its smallest principal axis, coloured by predicted quality
    (and, beside it, by the true lDDT): red is wrong, blue is right.

    Args:
        ca: (R, 3) C-alpha coordinates, Å.
        predicted, true: (R,) scores in [0, 1].
    """
    centred = ca - ca.mean(axis=0)
    axes_3d = np.linalg.svd(centred, full_matrices=False)[2]
    xy = centred @ axes_3d[:2].T
    panels = [("predicted (S-GCN)", predicted)] + (
        [("true lDDT", true)] if true is not None else []
    )
    figure = new_figure(figsize=(4.2 * len(panels), 4.2))
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (label, values) in zip(axes, panels, strict=True):
        axis.plot(xy[:, 0], xy[:, 1], color="0.7", linewidth=1, zorder=1)
        points = axis.scatter(
            xy[:, 0], xy[:, 1], c=values, cmap="RdYlBu", vmin=0, vmax=1, s=28, zorder=2
        )
        axis.set_title(f"{title} {label}".strip())
        axis.set_aspect("equal")
        axis.set_xlabel("Å")
    figure.colorbar(points, ax=list(axes), shrink=0.8, label="quality (1 = correct)")
    return figure
