"""Figures people look at: radiographs with organ contours and landmark uncertainty.

Every function returns a :class:`matplotlib.figure.Figure` made with
:func:`convsuite.core_ops.figures.new_figure` (no pyplot, no backend chosen here): a notebook shows it
inline, the CLI and the demo write it with :func:`convsuite.core_ops.figures.save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from skimage.measure import find_contours

from convsuite.core_ops.figures import new_figure

__all__ = [
    "ORGAN_COLOURS",
    "comparison_figure",
    "contours_figure",
    "draw_contours",
    "draw_masks",
    "overlay_figure",
]

ORGAN_COLOURS = {
    "RL": "tab:cyan",
    "LL": "tab:green",
    "H": "tab:red",
    "RCLA": "tab:orange",
    "LCLA": "gold",
}


def draw_contours(
    ax: Axes,
    image: np.ndarray,
    landmarks: Mapping[str, np.ndarray],
    uncertainty: Mapping[str, np.ndarray] | None = None,
    truth: Mapping[str, np.ndarray] | None = None,
    title: str = "",
) -> None:
    """Show ``image`` with each organ's closed contour on ``ax``.

    Args:
        ax: the axes to draw on.
        image: (H, W) radiograph in [0, 1].
        landmarks: organ -> (N_organ, 2) (x, y) pixels.
        uncertainty: organ -> (N_organ,) landmark spread in pixels, drawn as circles of that size.
        truth: organ -> (N_organ, 2) true contour, dashed white.
        title: axes title.
    """
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=(0, image.shape[1], image.shape[0], 0))
    for organ, points in landmarks.items():
        closed = np.vstack([points, points[:1]])
        colour = ORGAN_COLOURS[organ]
        if truth is not None and organ in truth:
            ref = np.vstack([truth[organ], truth[organ][:1]])
            ax.plot(ref[:, 0], ref[:, 1], "--", color="white", lw=0.8)
        ax.plot(closed[:, 0], closed[:, 1], "-", color=colour, lw=1.2, label=organ)
        if uncertainty is not None:
            ax.scatter(
                points[:, 0],
                points[:, 1],
                s=4 * (1 + uncertainty[organ]) ** 2,
                facecolors="none",
                edgecolors=colour,
                linewidths=0.6,
            )
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def draw_masks(
    ax: Axes, image: np.ndarray, masks: Mapping[str, np.ndarray], title: str = ""
) -> None:
    """Show ``image`` with the outline of each organ's (H, W) bool mask (every fragment and hole)."""
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=(0, image.shape[1], image.shape[0], 0))
    for organ, mask in masks.items():
        for outline in find_contours(np.pad(mask, 1).astype(float), 0.5):
            # find_contours gives (row, col) of the padded mask; pixel centres are at +0.5
            ax.plot(outline[:, 1] - 0.5, outline[:, 0] - 0.5, color=ORGAN_COLOURS[organ], lw=1.0)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def overlay_figure(
    image: np.ndarray,
    landmarks: Mapping[str, np.ndarray],
    uncertainty: Mapping[str, np.ndarray] | None = None,
    title: str = "",
) -> Figure:
    """One radiograph (H, W) with its predicted contours (and uncertainty circles), 5 in wide."""
    figure = new_figure(figsize=(5, 5 * image.shape[0] / image.shape[1]))
    draw_contours(figure.add_subplot(), image, landmarks, uncertainty, title=title)
    return figure


def contours_figure(
    images: Sequence[np.ndarray],
    landmarks: Sequence[Mapping[str, np.ndarray]],
    uncertainty: Sequence[Mapping[str, np.ndarray] | None] | None = None,
    truths: Sequence[Mapping[str, np.ndarray]] | None = None,
    titles: Sequence[str] | None = None,
) -> Figure:
    """Radiographs side by side, each with its contours (truth dashed, when given).

    Args:
        images: (H, W) radiographs in [0, 1].
        landmarks: per image, organ -> (N_organ, 2) (x, y) pixels.
        uncertainty: per image, organ -> (N_organ,) spread in pixels, or None.
        truths: per image, the true contours.
        titles: one per image.
    """
    n = len(images)
    figure = new_figure(figsize=(3.2 * n, 3.4))
    for i, ax in enumerate(np.atleast_1d(figure.subplots(1, n))):
        draw_contours(
            ax,
            images[i],
            landmarks[i],
            None if uncertainty is None else uncertainty[i],
            truth=None if truths is None else truths[i],
            title="" if titles is None else titles[i],
        )
    return figure


def comparison_figure(
    images: Sequence[np.ndarray],
    landmarks: Sequence[Mapping[str, np.ndarray]],
    pixel_masks: Sequence[Mapping[str, np.ndarray]],
    truths: Sequence[Mapping[str, np.ndarray]],
) -> Figure:
    """HybridGNet's contours (top row, truth dashed) against the U-Net's masks (bottom row)."""
    n = len(images)
    figure = new_figure(figsize=(3.2 * n, 6.6))
    axes = figure.subplots(2, n, squeeze=False)
    for column in range(n):
        draw_contours(
            axes[0, column],
            images[column],
            landmarks[column],
            truth=truths[column],
            title="HybridGNet (dashed: truth)",
        )
        draw_masks(axes[1, column], images[column], pixel_masks[column], "U-Net baseline")
    return figure
