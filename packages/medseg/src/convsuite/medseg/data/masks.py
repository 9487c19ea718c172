"""Organ masks from landmark contours and back (Montgomery/Shenzhen masks -> contours).

Same point convention as the rest of the package: pixel (r, c) covers [c, c+1) x [r, r+1), so its
centre is (c + 0.5, r + 0.5).
"""

from __future__ import annotations

import numpy as np
from skimage.draw import polygon
from skimage.measure import find_contours, label


def contour_to_mask(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Fill the closed contour (N, 2) (x, y) into an (H, W) bool mask (pixel centres inside)."""
    points = np.asarray(points, dtype=np.float64)
    rows, cols = polygon(points[:, 1] - 0.5, points[:, 0] - 0.5, shape)
    mask = np.zeros(shape, dtype=bool)
    mask[rows, cols] = True
    return mask


def mask_to_contour(mask: np.ndarray, n_points: int) -> np.ndarray:
    """The outline of the largest region of ``mask`` as ``n_points`` (x, y) points.

    Points are evenly spaced by arc length, start at the top-most boundary point and run
    counter-clockwise as seen on screen (y pointing down), the ordering of the package's contours.

    Raises:
        ValueError: the mask is empty.
    """
    regions = label(np.asarray(mask, dtype=bool), connectivity=2)
    if regions.max() == 0:
        raise ValueError("mask is empty: no organ to outline")
    largest = regions == np.argmax(np.bincount(regions.ravel())[1:]) + 1
    padded = np.pad(largest, 1).astype(np.float32)
    outline = max(find_contours(padded, 0.5), key=len)[:, ::-1] - 1 + 0.5  # (x, y), pixel centres
    return resample_closed(outline, n_points)


def resample_closed(points: np.ndarray, n_points: int) -> np.ndarray:
    """Resample a closed polyline to ``n_points`` evenly spaced by arc length, top-most first, CCW."""
    points = np.asarray(points, dtype=np.float64)
    if np.allclose(points[0], points[-1]):
        points = points[:-1]
    if signed_area(points) < 0:  # make the on-screen orientation counter-clockwise
        points = points[::-1]
    points = np.roll(points, -_top_index(points), axis=0)
    closed = np.vstack([points, points[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(closed, axis=0), axis=1))])
    targets = np.linspace(0.0, arc[-1], n_points, endpoint=False)
    return np.stack([np.interp(targets, arc, closed[:, i]) for i in range(2)], axis=1)


def _top_index(points: np.ndarray) -> int:
    """Index of the top-most point; on a flat top, the one in the middle of it."""
    top = np.flatnonzero(points[:, 1] <= points[:, 1].min() + 0.5)
    middle = points[top, 0].mean()
    return int(top[np.argmin(np.abs(points[top, 0] - middle))])


def signed_area(points: np.ndarray) -> float:
    """Shoelace area of a polygon in (x, y-down) coordinates; > 0 when counter-clockwise on screen."""
    x, y = np.asarray(points, dtype=np.float64).T
    return 0.5 * float(np.dot(y, np.roll(x, -1)) - np.dot(x, np.roll(y, -1)))
