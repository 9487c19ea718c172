"""Preprocessing as in HybridGNet: crop to the non-zero box, pad to square, resize; points follow.

Point convention: (x, y) with pixel (r, c) covering [c, c+1) x [r, r+1), so resizing scales
coordinates by new_size / old_size exactly. :class:`SquareFit` records the transform so that
predictions go back to the input image's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class SquareFit:
    """The crop -> pad -> resize transform from an input image to the model's square input.

    Attributes:
        crop_origin: (x0, y0) of the non-zero box in the input image, pixels.
        pad_offset: (px, py) zero padding added before the cropped image to make it square.
        side: side of the padded square, input pixels.
        size: side of the model input, pixels.
    """

    crop_origin: tuple[int, int]
    pad_offset: tuple[int, int]
    side: int
    size: int

    @property
    def scale(self) -> float:
        """Model pixels per input pixel."""
        return self.size / self.side

    def to_model(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) input-image pixels -> model-input pixels."""
        shift = np.subtract(self.pad_offset, self.crop_origin)
        return (np.asarray(points, dtype=np.float64) + shift) * self.scale

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(N, 2) model-input pixels -> input-image pixels."""
        shift = np.subtract(self.pad_offset, self.crop_origin)
        return np.asarray(points, dtype=np.float64) / self.scale - shift


def nonzero_box(image: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the smallest box holding every non-zero pixel (the whole image if none)."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    if rows.size == 0:
        return 0, 0, image.shape[1], image.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def fit_to_square(image: np.ndarray, size: int) -> tuple[np.ndarray, SquareFit]:
    """Crop ``image`` (H, W) to its non-zero box, zero-pad it to a centred square, resize to ``size``.

    Returns:
        (size, size) float32 image and the :class:`SquareFit` that maps points between the two.
    """
    x0, y0, x1, y1 = nonzero_box(image)
    cropped = image[y0:y1, x0:x1]
    height, width = cropped.shape
    side = max(height, width)
    pad_x, pad_y = (side - width) // 2, (side - height) // 2
    square = np.zeros((side, side), dtype=np.float32)
    square[pad_y : pad_y + height, pad_x : pad_x + width] = cropped
    fit = SquareFit((x0, y0), (pad_x, pad_y), side, size)
    return resize(square, size), fit


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Antialiased bilinear resize of a square float image to (size, size) float32."""
    if image.shape == (size, size):
        return image.astype(np.float32, copy=False)
    picture = Image.fromarray(np.asarray(image, dtype=np.float32), mode="F")
    return np.asarray(picture.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
