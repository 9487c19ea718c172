"""Figures as ``matplotlib.figure.Figure`` objects (core-ops' ``new_figure``); callers save them."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from convsuite.core_ops.figures import new_figure
from convsuite.materials.infer import Detection
from convsuite.materials.scoring import score_label

__all__ = ["plot_anomalies", "plot_evaluation", "plot_spectra"]


def plot_anomalies(found: Detection, truth: np.ndarray | None = None, title: str = "") -> Figure:
    """Score map, thresholded mask (and the ground truth when given), side by side."""
    panels = 3 if truth is not None else 2
    figure = new_figure(figsize=(4.2 * panels, 3.8))
    axes = figure.subplots(1, panels)
    image = axes[0].imshow(found.scores, cmap="magma")
    figure.colorbar(image, ax=axes[0], shrink=0.8, label=score_label(found.reference))
    axes[0].set_title(f"score, {found.window_ev[0]:g}-{found.window_ev[1]:g} eV")
    axes[1].imshow(found.mask, cmap="gray")
    axes[1].set_title(
        f"flagged: {int(found.mask.sum())} ({found.threshold_method} {found.threshold:.3g})"
    )
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


def _curves(results: dict[str, Any], shifts: list[float]) -> dict[str, list[float]]:
    """F1 per shift of the VAE (every reference), the best of PCA-3/4/5 and of NMF-3/4/5 at each
    shift (per reference), the ring median and the half-ring median."""
    rows = [results["shifts"][s] for s in shifts]
    curves = {}
    for name in ("VAE either", "VAE local", "VAE plain", "ring median", "half-ring median"):
        if name in rows[0]:
            curves[name] = [row[name]["f1"] for row in rows]
    for family in ("PCA", "NMF"):
        for reference in ("local", "plain"):
            names = [
                f"{family}-{k} {reference}"
                for k in (3, 4, 5)
                if f"{family}-{k} {reference}" in rows[0]
            ]
            if names:
                curves[f"best {family} {reference}"] = [
                    max(row[n]["f1"] for n in names) for row in rows
                ]
    return curves


def plot_evaluation(results: dict[str, Any], threshold_name: str = "null") -> Figure:
    """F1 per shift magnitude (as the reference's figure: the VAE, the best of PCA-3/4/5 and of
    NMF-3/4/5, the ring and half-ring medians; solid: local reference, dashed: plain, dash-dot:
    either) and the PCC histograms of normal and anomalous pixels (VAE with both references,
    PCA-3 plain) at one shift."""
    figure = new_figure(figsize=(12, 4.2))
    left, right = figure.subplots(1, 2)
    shifts = sorted(results["shifts"])
    for name, f1 in _curves(results, shifts).items():
        style = {"linewidth": 2.5, "color": "k"} if name.startswith("VAE") else {"linewidth": 1}
        style["linestyle"] = {"plain": "--", "either": "-."}.get(name.split()[-1], "-")
        left.plot(shifts, f1, marker="o", label=name, **style)
    left.axhline(0.9, color="0.6", linestyle=":")
    left.set_xscale("log")
    left.set_xlabel("Fe L edge shift (eV)")
    left.set_ylabel(f"F1 ({threshold_name} threshold)")
    left.set_ylim(0, 1.02)
    left.legend(fontsize=7, ncol=2)
    bins = np.linspace(-0.2, 1.0, 61)
    for name, color in (("VAE local", "C0"), ("VAE plain", "C2"), ("PCA-3 plain", "C3")):
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
