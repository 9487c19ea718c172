"""Figures people look at: radiographs with organ contours and landmark uncertainty."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import numpy as np

from convsuite.core_ops.io import atomic_path

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the non-interactive backend)
from matplotlib.axes import Axes  # noqa: E402

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
    """Show ``image`` with each organ's closed contour; uncertainty as circles of that radius (px)."""
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


def save_overlay(
    path: str | os.PathLike[str],
    image: np.ndarray,
    landmarks: Mapping[str, np.ndarray],
    uncertainty: Mapping[str, np.ndarray] | None = None,
    title: str = "",
) -> Path:
    """Write one radiograph with its predicted contours as PNG (atomically)."""
    fig, ax = plt.subplots(figsize=(5, 5 * image.shape[0] / image.shape[1]), dpi=120)
    draw_contours(ax, image, landmarks, uncertainty, title=title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(path)
