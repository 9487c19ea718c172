"""The disc pipeline of ``medseg ivd segment``: a subject folder in, labels and discs out.

``segment_subject`` reads an IVDM3Seg subject folder (four Dixon volumes, any orientation the
affine describes), runs the network over its sagittal slices in batches
(:meth:`~convsuite.medseg.models.volume_segmenter.VolumeSegmenter.segment`) and returns the 0/1
labels in the input's shape and affine with the discs (centroids in world mm, head to feet).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import nibabel as nib
import numpy as np
import torch

from convsuite.medseg.data.discs import Disc
from convsuite.medseg.data.ivdm3seg import read_subject

__all__ = ["IVDResult", "canonical_affine", "segment_subject"]


@dataclass(frozen=True)
class IVDResult:
    """One subject's segmentation.

    Attributes:
        name: the subject folder's name.
        image: (4, X, Y, Z) the Dixon volumes as read (file orientation).
        affine: (4, 4) voxel -> world of the input, mm; the labels share it.
        labels: (X, Y, Z) uint8, 1 = disc.
        discs: head to feet.
    """

    name: str
    image: np.ndarray
    affine: np.ndarray
    labels: np.ndarray
    discs: list[Disc]

    def discs_json(self) -> dict:
        """``{"discs": [{"index", "centroid_mm", "volume_mm3"}, ...]}``, head to feet."""
        return {"discs": [disc.to_json() for disc in self.discs]}


def segment_subject(
    net: torch.nn.Module,
    folder: str | os.PathLike[str],
    batch_size: int = 6,
    progress: Callable[[int], None] | None = None,
    precision: str = "fp32",
    shifts: bool = True,
) -> IVDResult:
    """Read and segment one subject folder (``<NN>/<NN>_{fat,inn,opp,wat}.nii[.gz]``);
    ``precision`` is ``fp32`` or ``bf16``, ``shifts`` adds the sub-pixel shifted grids (see
    ``VolumeSegmenter.segment``).

    Raises:
        InputError: a missing modality, volumes whose shapes or affines differ, NaN values.
    """
    subject = read_subject(folder, labels=False)
    labels, discs = net.segment(
        subject.image, subject.affine, batch_size, progress, precision=precision, shifts=shifts
    )
    return IVDResult(subject.name, subject.image, subject.affine, labels, discs)


def canonical_affine(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Voxel -> world of the RAS-ordered volume of :func:`~convsuite.medseg.data.ivdm3seg.to_canonical`."""
    ornt = nib.orientations.io_orientation(affine)
    return affine @ nib.orientations.inv_ornt_aff(ornt, shape)
