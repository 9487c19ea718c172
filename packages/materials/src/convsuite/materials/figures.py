"""Figures as ``matplotlib.figure.Figure`` objects (core-ops' ``new_figure``); callers save them."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from convsuite.core_ops.figures import new_figure
from convsuite.materials.infer import Detection

__all__ = ["plot_anomalies", "plot_evaluation", "plot_spectra"]


def plot_anomalies(found: Detection, truth: np.ndarray | None = None, title: str = "") -> Figure:
    """Score map, Otsu mask (and the ground truth when given), side by side."""
    panels = 3 if truth is not None else 2
    figure = new_figure(figsize=(4.2 * panels, 3.8))
    axes = figure.subplots(1, panels)
    image = axes[0].imshow(found.scores, cmap="magma")
    figure.colorbar(image, ax=axes[0], shrink=0.8, label="1 - Pearson r")
    axes[0].set_title(f"score, {found.window_ev[0]:g}-{found.window_ev[1]:g} eV")
    axes[1].imshow(found.mask, cmap="gray")
    axes[1].set_title(f"flagged: {int(found.mask.sum())} (Otsu {found.threshold:.3f})")
    if truth is not None:
        axes[2].imshow(truth, cmap="gray")
        axes[2].set_title(f"ground truth: {int(truth.sum())}")
    for axis in axes:
        axis.set_xlabel("x (px)")
        axis.set_ylabel("y (px)")
    if title:
        figure.suptitle(title)
    return figure


def plot_spectra(found: Detection) -> Figure:
    """Mean (scaled) spectra of normal and flagged pixels, with the scoring window shaded."""
    figure = new_figure(figsize=(6.5, 3.8))
    axis = figure.subplots()
    axis.plot(found.energies, found.mean_normal, label=f"normal ({int((~found.mask).sum())})")
    if found.mask.any():
        axis.plot(found.energies, found.mean_flagged, label=f"flagged ({int(found.mask.sum())})")
    axis.axvspan(*found.window_ev, color="0.9", zorder=0, label="score window")
    axis.set_xlabel("energy loss (eV)")
    axis.set_ylabel("scaled intensity")
    axis.legend()
    return figure


def plot_evaluation(results: dict[str, Any]) -> Figure:
    """F1 per shift magnitude for every method (as the reference's figure) and the PCC
    histograms of normal and anomalous pixels (VAE and PCA-3) at one shift."""
    figure = new_figure(figsize=(12, 4.2))
    left, right = figure.subplots(1, 2)
    shifts = sorted(results["shifts"])
    methods = list(results["shifts"][shifts[0]])
    for name in methods:
        f1 = [results["shifts"][s][name]["f1"] for s in shifts]
        style = {"linewidth": 2.5, "color": "k"} if name == "VAE" else {"linewidth": 1}
        left.plot(shifts, f1, marker="o", label=name, **style)
    left.axhline(0.9, color="0.6", linestyle=":")
    left.set_xscale("log")
    left.set_xlabel("Fe L edge shift (eV)")
    left.set_ylabel("F1 (Otsu threshold)")
    left.set_ylim(0, 1.02)
    left.legend(fontsize=7, ncol=2)
    bins = np.linspace(-0.2, 1.0, 61)
    for name, color in (("VAE", "C0"), ("PCA-3", "C3")):
        if name in results["histograms"]:
            normal, anomalous = results["histograms"][name]
            right.hist(normal, bins, color=color, alpha=0.5, density=True, label=f"{name} normal")
            right.hist(
                anomalous,
                bins,
                color=color,
                histtype="step",
                density=True,
                label=f"{name} anomalous",
            )
    right.set_xlabel("Pearson r in the window")
    right.set_ylabel("density")
    right.legend(fontsize=8)
    return figure
