"""Evaluation of HybridGNet against the pixel baseline, as in the paper's Table II (and occlusion study).

For every image of a landmark dataset: Dice and Hausdorff distance (mm) per organ of both methods
against the filled true contours, HybridGNet's landmark MSE (px^2 at 1024 px), and whether each
predicted organ is topologically valid (one region, no holes).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from rich.progress import track
from rich.table import Table

from convsuite.core_ops.errors import InputError
from convsuite.medseg.data.images import default_pixel_spacing, radiograph_spacing
from convsuite.medseg.data.landmarks import ORGAN_NAMES, stack
from convsuite.medseg.data.layout import scan_dataset
from convsuite.medseg.data.masks import contour_to_mask
from convsuite.medseg.infer import segment, segment_pixels
from convsuite.medseg.metrics import dice, hausdorff_mm, is_topologically_valid, landmark_mse
from convsuite.medseg.models.hybridgnet import HybridGNet
from convsuite.medseg.models.pixel_baseline import UNetBaseline


@dataclass
class MethodScores:
    """Per-image scores of one method. Lists run over images; dicts over organs."""

    dice: dict[str, list[float]] = field(default_factory=dict)
    hausdorff_mm: dict[str, list[float]] = field(default_factory=dict)
    valid: dict[str, list[bool]] = field(default_factory=dict)
    landmark_mse_px2: list[float] = field(default_factory=list)

    def add(self, organ: str, predicted: np.ndarray, truth: np.ndarray, spacing: float) -> None:
        self.dice.setdefault(organ, []).append(dice(predicted, truth))
        self.hausdorff_mm.setdefault(organ, []).append(hausdorff_mm(predicted, truth, spacing))
        self.valid.setdefault(organ, []).append(is_topologically_valid(predicted))

    def summary(self) -> dict[str, float]:
        """Means: ``dice_<organ>``, ``hd_mm_<organ>``, ``valid_<organ>`` (fraction), landmark MSE."""
        out: dict[str, float] = {}
        for organ in self.dice:
            out[f"dice_{organ}"] = float(np.mean(self.dice[organ]))
            out[f"hd_mm_{organ}"] = float(np.mean(self.hausdorff_mm[organ]))
            out[f"valid_{organ}"] = float(np.mean(self.valid[organ]))
        if self.landmark_mse_px2:
            out["landmark_mse_px2"] = float(np.mean(self.landmark_mse_px2))
        return out


def evaluate_dataset(
    net: HybridGNet,
    data_root: str | os.PathLike[str],
    baseline: UNetBaseline | None = None,
    pixel_spacing_mm: float | None = None,
    batch_size: int = 16,
    progress: bool = True,
) -> dict[str, MethodScores]:
    """Score HybridGNet (and the baseline, if given) on every image of a landmark-layout dataset.

    Args:
        net: the HybridGNet to score.
        data_root: a landmark-layout dataset (``images/``, ``landmarks/<organ>/``).
        baseline: the U-Net baseline, scored on the same images, or None.
        pixel_spacing_mm: mm per pixel for the Hausdorff distance; default: the DICOM file's
            ``PixelSpacing``/``ImagerPixelSpacing``, else :func:`default_pixel_spacing` of each
            image's width.
        batch_size: images per forward pass.
        progress: show a progress bar.

    Returns:
        method name ("HybridGNet", "UNet") -> its scores.
    """
    organs = net.config.organs
    if baseline is not None and not set(organs) <= set(baseline.config.organs):
        raise InputError(
            "baseline",
            f"the U-Net baseline segments {', '.join(baseline.config.organs)}; HybridGNet "
            f"{', '.join(organs)}: score them on the same organs",
        )
    samples = scan_dataset(data_root, organs)
    results = {"HybridGNet": MethodScores()}
    if baseline is not None:
        results["UNet"] = MethodScores()
    chunks = [samples[i : i + batch_size] for i in range(0, len(samples), batch_size)]
    for chunk in track(chunks, description=f"evaluating {data_root}", disable=not progress):
        read = [sample.read() for sample in chunk]
        images = [image for image, _ in read]
        predictions = list(segment(net, images, batch_size=batch_size))
        pixel_masks = segment_pixels(baseline, images) if baseline is not None else None
        for i, (image, truth) in enumerate(read):
            spacing = (
                pixel_spacing_mm
                or radiograph_spacing(chunk[i].image_path)
                or default_pixel_spacing(image.shape[1])
            )
            true_masks = {o: contour_to_mask(truth[o], image.shape) for o in organs}
            for organ in organs:
                results["HybridGNet"].add(
                    organ, predictions[i].masks[organ], true_masks[organ], spacing
                )
                if pixel_masks is not None:
                    results["UNet"].add(organ, pixel_masks[i][organ], true_masks[organ], spacing)
            results["HybridGNet"].landmark_mse_px2.append(
                landmark_mse(
                    stack(predictions[i].landmarks, organs), stack(truth, organs), image.shape[1]
                )
            )
    return results


def results_table(results: dict[str, dict[str, float]], title: str, organs: Sequence[str]) -> Table:
    """A rich table as the paper's: one row per organ and metric, one column per method."""
    table = Table(title=title)
    table.add_column("organ")
    table.add_column("metric")
    for method in results:
        table.add_column(method, justify="right")
    metrics = (("Dice", "dice", "{:.3f}", 1), ("HD (mm)", "hd_mm", "{:.2f}", 1))
    for organ in organs:
        for label, key, fmt, scale in (*metrics, ("valid", "valid", "{:.0f}%", 100)):
            values = [fmt.format(scale * s[f"{key}_{organ}"]) for s in results.values()]
            table.add_row(ORGAN_NAMES[organ], label, *values)
    mse = [s.get("landmark_mse_px2") for s in results.values()]
    table.add_row("all", "landmark MSE (px²)", *("-" if m is None else f"{m:.1f}" for m in mse))
    return table
