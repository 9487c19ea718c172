"""Scoring disc segmentations and localizations against labelled subjects, per disc and per subject.

Overlap and surface figures are MONAI's (``DiceMetric``, ``HausdorffDistanceMetric`` at the 95th
percentile, ``SurfaceDistanceMetric`` symmetric), with the voxel spacing from the affine, so the
distances are in mm. Each true disc (a connected component of the labels) is paired with the
predicted component that overlaps it most; it counts as *found* when that pair's Dice is at least
0.5, and its *centroid error* is the distance between the two centroids (mm). Predicted components
paired with no true disc are *extra* (e.g. the unlabelled T10-T11 disc or a sacral remnant).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from monai.metrics import DiceMetric, HausdorffDistanceMetric, SurfaceDistanceMetric
from scipy import ndimage

from convsuite.medseg.data.discs import Disc, find_discs
from convsuite.medseg.data.ivdm3seg import find_subjects, read_subject

__all__ = ["FOUND_DICE", "SubjectScore", "evaluate_subjects", "score_subject", "summarize"]

FOUND_DICE = 0.5
"""A true disc is found when its best-overlapping predicted component reaches this Dice."""
_MARGIN = 4


@dataclass
class SubjectScore:
    """Scores of one subject.

    Attributes:
        name: the subject's folder name.
        dice, hd95_mm, msd_mm: whole-volume Dice, 95% Hausdorff and mean surface distance (mm).
        discs: per true disc (head to feet): dice, hd95_mm, msd_mm, centroid_error_mm, found.
        extra: predicted components paired with no true disc.
        seconds: time to segment the subject.
    """

    name: str
    dice: float
    hd95_mm: float
    msd_mm: float
    discs: list[dict[str, float]] = field(default_factory=list)
    extra: int = 0
    seconds: float = 0.0

    @property
    def found(self) -> int:
        return sum(int(d["found"]) for d in self.discs)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "dice": self.dice,
            "hd95_mm": self.hd95_mm,
            "msd_mm": self.msd_mm,
            "found": self.found,
            "true_discs": len(self.discs),
            "extra": self.extra,
            "seconds": round(self.seconds, 2),
            "discs": self.discs,
        }


def _surface_scores(
    predicted: np.ndarray, truth: np.ndarray, spacing: Sequence[float]
) -> tuple[float, float, float]:
    """MONAI Dice, HD95 (mm) and symmetric mean surface distance (mm) of two 0/1 volumes."""
    y_pred = torch.from_numpy(np.ascontiguousarray(predicted, dtype=np.float32))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(truth, dtype=np.float32))[None, None]
    dice = DiceMetric(include_background=True)(y_pred, y).item()
    if not predicted.any() or not truth.any():
        return dice, float("inf"), float("inf")
    spacing = [float(s) for s in spacing]
    hd95 = HausdorffDistanceMetric(include_background=True, percentile=95)(
        y_pred, y, spacing=spacing
    ).item()
    msd = SurfaceDistanceMetric(include_background=True, symmetric=True)(
        y_pred, y, spacing=spacing
    ).item()
    return dice, hd95, msd


def score_subject(
    name: str, predicted: np.ndarray, truth: np.ndarray, affine: np.ndarray
) -> SubjectScore:
    """Whole-volume and per-disc scores of a predicted 0/1 volume (both in file orientation).

    Args:
        name: the subject's name.
        predicted, truth: (X, Y, Z) 0/1.
        affine: (4, 4) voxel -> world, mm.
    """
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    dice, hd95, msd = _surface_scores(predicted > 0, truth > 0, spacing)
    score = SubjectScore(name, dice, hd95, msd)
    structure = np.ones((3, 3, 3), bool)
    true_parts, _ = ndimage.label(truth > 0, structure=structure)
    pred_parts, n_pred = ndimage.label(predicted > 0, structure=structure)
    _, true_discs = find_discs(truth, affine)
    paired: set[int] = set()
    centres = ndimage.center_of_mass(truth > 0, true_parts, range(1, true_parts.max() + 1))
    # visit true components head to feet (the order of find_discs)
    order = sorted(
        range(1, true_parts.max() + 1),
        key=lambda i: -(affine[:3, :3] @ np.asarray(centres[i - 1]) + affine[:3, 3])[2],
    )
    for disc, component in zip(true_discs, order, strict=True):
        mask = true_parts == component
        overlap = np.bincount(pred_parts[mask], minlength=n_pred + 1)
        overlap[0] = 0
        best = int(overlap.argmax()) if overlap.any() else 0
        entry = {"index": disc.index, "dice": 0.0, "hd95_mm": float("inf")}
        entry |= {"msd_mm": float("inf"), "centroid_error_mm": float("inf"), "found": 0}
        if best:
            paired.add(best)
            other = pred_parts == best
            box = _box(mask | other)
            d, h, m = _surface_scores(other[box], mask[box], spacing)
            centre = ndimage.center_of_mass(other)
            world = affine[:3, :3] @ np.asarray(centre) + affine[:3, 3]
            error = float(np.linalg.norm(world - np.asarray(disc.centroid_mm)))
            entry |= {"dice": d, "hd95_mm": h, "msd_mm": m, "centroid_error_mm": error}
            entry["found"] = int(d >= FOUND_DICE)
        score.discs.append(entry)
    score.extra = n_pred - len(paired)
    return score


def _box(mask: np.ndarray) -> tuple[slice, ...]:
    """Bounding box of ``mask`` grown by a few voxels (surface distances need a border)."""
    where = np.nonzero(mask)
    return tuple(slice(max(int(w.min()) - _MARGIN, 0), int(w.max()) + _MARGIN + 1) for w in where)


def evaluate_subjects(
    networks: dict[str, torch.nn.Module],
    root: str | os.PathLike[str],
    batch_size: int = 6,
    progress: Callable[[str, str], None] | None = None,
    shifts: bool = True,
    segmented: Callable[[str, str, np.ndarray, list[Disc]], None] | None = None,
) -> dict[str, list[SubjectScore]]:
    """Segment every labelled subject under ``root`` with each network and score it.

    Args:
        networks: method name -> a network with ``segment`` (IVD-Net or a fusion baseline).
        root: IVDM3Seg-layout folder (subjects with ``<NN>_Labels.nii``).
        batch_size: slices per forward pass.
        progress: called with (method, subject) after each subject.
        shifts: sub-pixel shifted grids (see ``VolumeSegmenter.segment``).
        segmented: called with (method, subject, labels, discs) after each segmentation (to
            keep an output without segmenting again).
    """
    import time

    scores: dict[str, list[SubjectScore]] = {name: [] for name in networks}
    for folder in find_subjects(root):
        subject = read_subject(folder)
        if subject.labels is None:
            continue
        for method, net in networks.items():
            started = time.perf_counter()
            labels, discs = net.segment(
                subject.image, subject.affine, batch_size=batch_size, shifts=shifts
            )
            seconds = time.perf_counter() - started
            if segmented is not None:
                segmented(method, subject.name, labels, discs)
            score = score_subject(subject.name, labels, subject.labels, subject.affine)
            score.seconds = seconds
            scores[method].append(score)
            if progress is not None:
                progress(method, subject.name)
    return scores


def _finite_mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def summarize(scores: list[SubjectScore]) -> dict[str, float]:
    """Means over subjects (Dice, HD95, MSD), over found discs (centroid error), and counts.

    Distances are averaged over the finite values; ``discs_found`` is the share of true discs
    found, ``all_found`` the share of subjects with every true disc found.
    """
    discs = [d for s in scores for d in s.discs]
    found = [d for d in discs if d["found"]]
    return {
        "subjects": len(scores),
        "dice": _finite_mean([s.dice for s in scores]),
        "hd95_mm": _finite_mean([s.hd95_mm for s in scores]),
        "msd_mm": _finite_mean([s.msd_mm for s in scores]),
        "disc_dice": _finite_mean([d["dice"] for d in discs]),
        "centroid_error_mm": _finite_mean([d["centroid_error_mm"] for d in found]),
        "discs_found": len(found) / max(len(discs), 1),
        "all_found": float(np.mean([s.found == len(s.discs) for s in scores])) if scores else 0.0,
        "extra_per_subject": float(np.mean([s.extra for s in scores])) if scores else 0.0,
        "seconds_per_subject": float(np.mean([s.seconds for s in scores])) if scores else 0.0,
    }
