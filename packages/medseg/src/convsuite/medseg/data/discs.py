"""Discs as connected components of a label volume: centroids in world mm, volumes in mm^3.

Localization is half of the IVDM3Seg task: each disc is reported by its centroid in world
coordinates (the affine's frame, mm) and ordered head to feet (descending superior coordinate).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["Disc", "find_discs", "voxel_volume_mm3"]


@dataclass(frozen=True)
class Disc:
    """One disc.

    Attributes:
        index: 1 for the top-most (head) disc, counting towards the feet.
        centroid_mm: (x, y, z) world coordinates of the centroid, mm (RAS when the affine is).
        volume_mm3: volume, mm^3.
    """

    index: int
    centroid_mm: tuple[float, float, float]
    volume_mm3: float

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "centroid_mm": [round(v, 3) for v in self.centroid_mm],
            "volume_mm3": round(self.volume_mm3, 1),
        }


def voxel_volume_mm3(affine: np.ndarray) -> float:
    """Volume of one voxel, mm^3 (|det| of the affine's 3 x 3 part)."""
    return float(abs(np.linalg.det(affine[:3, :3])))


def find_discs(
    labels: np.ndarray, affine: np.ndarray, min_volume_mm3: float = 0.0
) -> tuple[np.ndarray, list[Disc]]:
    """Connected components (26-connected) of ``labels`` as discs, head to feet.

    Args:
        labels: (X, Y, Z) 0/1 in file orientation.
        affine: (4, 4) voxel -> world, mm.
        min_volume_mm3: components smaller than this are dropped (specks, not discs).

    Returns:
        The labels without the dropped components (uint8), and the discs ordered by descending
        world z (head first when the affine is RAS).
    """
    components, count = ndimage.label(labels > 0, structure=np.ones((3, 3, 3), bool))
    voxel = voxel_volume_mm3(affine)
    kept = np.zeros(count + 1, bool)
    found = []
    if count:
        index = np.arange(1, count + 1)
        sizes = ndimage.sum_labels(np.ones_like(components), components, index)
        centres = ndimage.center_of_mass(np.ones_like(components), components, index)
        for label, size, centre in zip(index, sizes, centres, strict=True):
            if size * voxel < min_volume_mm3:
                continue
            kept[label] = True
            world = affine[:3, :3] @ np.asarray(centre) + affine[:3, 3]
            found.append((tuple(float(v) for v in world), float(size * voxel)))
    found.sort(key=lambda item: -item[0][2])
    discs = [Disc(i + 1, centre, volume) for i, (centre, volume) in enumerate(found)]
    return kept[components].astype(np.uint8), discs
