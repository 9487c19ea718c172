"""Organ landmark sets of chest radiographs: the organs, their landmark counts, and validation.

The landmark convention is the Chest-xray-landmark dataset's (Gaggion et al., 2022): each organ is
a closed contour of a fixed number of (x, y) points, x = column and y = row, in pixel units of the
image they belong to (1024-pixel images in the dataset). HybridGNet's flat arrays concatenate the
organs RL, LL, H, RCLA, LCLA as interleaved x, y: (332,) for all five, (240,) for lungs and heart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from convsuite.core_ops.io import InputError

ORGAN_SIZES: dict[str, int] = {"RL": 44, "LL": 50, "H": 26, "RCLA": 23, "LCLA": 23}
"""Landmarks per organ: right lung, left lung, heart, right and left clavicle."""

ORGAN_NAMES: dict[str, str] = {
    "RL": "right lung",
    "LL": "left lung",
    "H": "heart",
    "RCLA": "right clavicle",
    "LCLA": "left clavicle",
}

LUNGS_AND_HEART: tuple[str, ...] = ("RL", "LL", "H")
ALL_ORGANS: tuple[str, ...] = tuple(ORGAN_SIZES)

Landmarks = dict[str, np.ndarray]
"""organ -> (N_organ, 2) float64 (x, y) in pixels."""


def validate_landmarks(landmarks: Mapping[str, np.ndarray], source: str) -> Landmarks:
    """Check counts, shapes and finiteness; return float64 copies. Raises InputError naming ``source``."""
    checked: Landmarks = {}
    for organ, points in landmarks.items():
        if organ not in ORGAN_SIZES:
            raise InputError(source, f"unknown organ {organ!r}; expected one of {ALL_ORGANS}")
        array = np.asarray(points, dtype=np.float64)
        expected = ORGAN_SIZES[organ]
        if array.shape != (expected, 2):
            raise InputError(
                source, f"{organ} needs ({expected}, 2) landmarks, got shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise InputError(source, f"{organ} landmarks contain NaN or infinite values")
        checked[organ] = array
    return checked


def from_flat(flat: np.ndarray, source: str) -> Landmarks:
    """HybridGNet's flat array ((240,) or (332,), or (120, 2) / (166, 2)) -> landmarks per organ."""
    points = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    organs = {len_: organs for organs, len_ in _flat_layouts().items()}.get(points.shape[0])
    if organs is None:
        raise InputError(
            source,
            f"a flat landmark array needs 120 or 166 points (240 or 332 values), got {points.size}",
        )
    splits = np.cumsum([ORGAN_SIZES[organ] for organ in organs])[:-1]
    return validate_landmarks(dict(zip(organs, np.split(points, splits), strict=True)), source)


def to_flat(landmarks: Mapping[str, np.ndarray]) -> np.ndarray:
    """Landmarks per organ -> HybridGNet's flat (240,) or (332,) array."""
    organs = ALL_ORGANS if set(landmarks) == set(ALL_ORGANS) else LUNGS_AND_HEART
    if set(landmarks) != set(organs):
        raise ValueError(
            f"flat arrays hold {LUNGS_AND_HEART} or {ALL_ORGANS}, got {list(landmarks)}"
        )
    return np.concatenate([np.asarray(landmarks[organ]) for organ in organs]).reshape(-1)


def stack(landmarks: Mapping[str, np.ndarray], organs: Sequence[str]) -> np.ndarray:
    """(N, 2) node array in ``organs`` order."""
    return np.concatenate([np.asarray(landmarks[organ], dtype=np.float64) for organ in organs])


def unstack(nodes: np.ndarray, organs: Sequence[str]) -> Landmarks:
    """Inverse of :func:`stack`."""
    splits = np.cumsum([ORGAN_SIZES[organ] for organ in organs])[:-1]
    return dict(zip(organs, np.split(np.asarray(nodes, dtype=np.float64), splits), strict=True))


def _flat_layouts() -> dict[tuple[str, ...], int]:
    return {organs: sum(ORGAN_SIZES[o] for o in organs) for organs in (LUNGS_AND_HEART, ALL_ORGANS)}
