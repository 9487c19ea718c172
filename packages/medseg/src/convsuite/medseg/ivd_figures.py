"""Figures of the disc task: the mid-sagittal overlay with numbered discs, and score bars."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from convsuite.core_ops.figures import new_figure
from convsuite.medseg.data.discs import Disc
from convsuite.medseg.data.ivdm3seg import MODALITIES, to_canonical
from convsuite.medseg.ivd_infer import canonical_affine

__all__ = ["disc_overlay_figure", "method_bars_figure"]


def disc_overlay_figure(
    image: np.ndarray,
    affine: np.ndarray,
    labels: np.ndarray,
    discs: Sequence[Disc],
    truth: np.ndarray | None = None,
    title: str = "",
    modality: str = "wat",
) -> Figure:
    """Mid-sagittal slice (superior up, anterior right) with the discs outlined and numbered.

    Args:
        image: (4, X, Y, Z) Dixon volumes, file orientation.
        affine: (4, 4) voxel -> world, mm.
        labels: (X, Y, Z) predicted 0/1, file orientation.
        discs: the predicted discs (numbers are drawn at their centroids).
        truth: optional (X, Y, Z) true labels, outlined dashed.
        title: figure title.
        modality: the Dixon image shown (fat, inn, opp, wat).
    """
    volume, _ = to_canonical(image[MODALITIES.index(modality)], affine)
    predicted, _ = to_canonical(labels, affine)
    to_voxel = np.linalg.inv(canonical_affine(affine, labels.shape))
    if discs:
        centre = np.mean([to_voxel[:3, :3] @ d.centroid_mm + to_voxel[:3, 3] for d in discs], 0)
        index = int(np.clip(round(centre[0]), 0, volume.shape[0] - 1))
    else:
        index = volume.shape[0] // 2
    spacing = np.linalg.norm(canonical_affine(affine, labels.shape)[:3, :3], axis=0)
    extent = (0, volume.shape[1] * spacing[1], 0, volume.shape[2] * spacing[2])
    figure = new_figure(figsize=(5.5, 6))
    axes = figure.add_subplot()
    plane = volume[index].T
    axes.imshow(plane, cmap="gray", origin="lower", extent=extent, vmax=np.percentile(plane, 99.5))
    grid = _grid(plane.shape, extent)
    axes.contour(*grid, predicted[index].T, levels=[0.5], colors="#ff4040", linewidths=1.2)
    if truth is not None:
        true_plane, _ = to_canonical(truth, affine)
        axes.contour(
            *grid,
            true_plane[index].T,
            levels=[0.5],
            colors="#40c0ff",
            linewidths=0.8,
            linestyles="dashed",
        )
    for disc in discs:
        voxel = to_voxel[:3, :3] @ disc.centroid_mm + to_voxel[:3, 3]
        y, z = voxel[1] * spacing[1], voxel[2] * spacing[2]
        axes.text(y + 22, z, str(disc.index), color="yellow", fontsize=9, va="center")
    axes.set_xlabel("posterior -> anterior (mm)")
    axes.set_ylabel("inferior -> superior (mm)")
    axes.set_title(title or f"sagittal slice {index}: {len(discs)} discs")
    return figure


def _grid(shape: tuple[int, int], extent: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = shape
    x = np.linspace(extent[0], extent[1], cols, endpoint=False) + (extent[1] - extent[0]) / cols / 2
    y = np.linspace(extent[2], extent[3], rows, endpoint=False) + (extent[3] - extent[2]) / rows / 2
    return x, y


def method_bars_figure(summary: dict[str, dict[str, float]]) -> Figure:
    """Dice, HD95 and centroid error of each method side by side (one panel per figure)."""
    metrics = (("dice", "Dice"), ("hd95_mm", "HD95 (mm)"), ("centroid_error_mm", "centroid (mm)"))
    figure = new_figure(figsize=(9, 3))
    methods = list(summary)
    for panel, (key, label) in enumerate(metrics):
        axes = figure.add_subplot(1, len(metrics), panel + 1)
        axes.bar(methods, [summary[m][key] for m in methods], color="#4a7bd0")
        axes.set_title(label)
        axes.tick_params(axis="x", labelrotation=20, labelsize=7)
    return figure
