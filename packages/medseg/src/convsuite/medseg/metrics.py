"""Segmentation metrics for chest radiographs, computed as HybridGNet's paper does.

Dice and Hausdorff distance (mm, with the pixel spacing) come from MONAI's metric functions; the
landmark MSE is in px^2 per coordinate at the 1024-pixel scale (Gaggion et al., TMI 2022, Table II);
topological validity asks each organ to be one connected region without holes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import torch
from monai.metrics import compute_dice, compute_hausdorff_distance
from scipy.ndimage import binary_fill_holes
from skimage.measure import label

LANDMARK_MSE_SCALE = 1024
"""Landmark MSE is quoted in pixels^2 of a 1024-pixel image, as in the paper."""


def _as_batch(mask: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None]


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of two (H, W) bool masks (1.0 when both are empty)."""
    if not predicted.any() and not truth.any():
        return 1.0
    return float(compute_dice(_as_batch(predicted), _as_batch(truth), ignore_empty=False).item())


def hausdorff_mm(predicted: np.ndarray, truth: np.ndarray, pixel_spacing_mm: float) -> float:
    """Symmetric Hausdorff distance between two (H, W) bool masks' boundaries, in millimetres.

    An empty prediction against a non-empty truth scores the image diagonal (the worst case).
    """
    if not predicted.any() or not truth.any():
        return float(np.hypot(*truth.shape) * pixel_spacing_mm)
    with warnings.catch_warnings():
        # MONAI 1.5+ passes its own deprecated `always_return_as_numpy` internally.
        warnings.filterwarnings(
            "ignore", message=".*always_return_as_numpy", category=FutureWarning
        )
        distance = compute_hausdorff_distance(
            _as_batch(predicted), _as_batch(truth), spacing=pixel_spacing_mm
        )
    return float(distance.item())


def landmark_mse(predicted: np.ndarray, truth: np.ndarray, image_size: float) -> float:
    """Mean squared error per coordinate, in px^2 at the 1024-pixel scale.

    Args:
        predicted: (N, 2) landmarks in pixels of an image of side ``image_size``.
        truth: (N, 2) true landmarks in the same pixels.
        image_size: side of the image the landmarks are in.
    """
    scale = LANDMARK_MSE_SCALE / image_size
    return float(np.mean(((np.asarray(predicted) - np.asarray(truth)) * scale) ** 2))


def is_topologically_valid(mask: np.ndarray) -> bool:
    """One 8-connected region and no holes: the shape of a real organ on a radiograph."""
    mask = np.asarray(mask, dtype=bool)
    return bool(
        label(mask, connectivity=2).max() == 1 and np.array_equal(binary_fill_holes(mask), mask)
    )


def is_simple_polygon(points: np.ndarray) -> bool:
    """True when the closed contour (N, 2) has no two non-adjacent edges crossing."""
    start = np.asarray(points, dtype=np.float64)
    end = np.roll(start, -1, axis=0)
    n = len(start)
    p, r = start[:, None, :], (end - start)[:, None, :]
    q, s = start[None, :, :], (end - start)[None, :, :]
    denominator = _cross(r, s)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = _cross(q - p, s) / denominator
        u = _cross(q - p, r) / denominator
    crossing = (denominator != 0) & (t > 0) & (t < 1) & (u > 0) & (u < 1)
    index = np.arange(n)
    adjacent = (np.abs(index[:, None] - index[None, :]) <= 1) | (
        np.abs(index[:, None] - index[None, :]) == n - 1
    )
    return not bool((crossing & ~adjacent).any())


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def cardiothoracic_ratio(landmarks: Mapping[str, np.ndarray]) -> float:
    """Maximal heart width over maximal thorax width (outer lung edges), from RL, LL and H contours."""
    heart = np.asarray(landmarks["H"])[:, 0]
    thorax = np.ptp(np.concatenate([landmarks["RL"][:, 0], landmarks["LL"][:, 0]]))
    return float(np.ptp(heart) / thorax)
