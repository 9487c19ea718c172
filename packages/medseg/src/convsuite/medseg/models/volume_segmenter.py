"""Whole-volume inference for the 2-D disc networks: sagittal slices in batches, discs out.

Shared by IVD-Net and its fusion baselines (a mixin, so ``IVDNet.from_pretrained().segment(...)``
works): the volume is brought to RAS by its affine, each modality normalized, every sagittal slice
resampled in-plane to the pixel size the weights expect (``config.pixel_mm``) and zero-padded to a
multiple of 16; the network runs on batches of slices; the logits are resampled back (bilinear, as
the training loss sees them), the disc probability thresholded at 0.5, put back into the file's
axis order, and split into discs (:func:`~convsuite.medseg.data.discs.find_discs`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.precision import check_precision, inference_mode, prepare_for_inference
from convsuite.medseg.data.discs import Disc, find_discs
from convsuite.medseg.data.ivdm3seg import (
    canonical_spacing,
    from_canonical,
    normalize,
    to_canonical,
)

__all__ = ["IVDM3SEG_AFFINE", "MIN_DISC_MM3", "VolumeSegmenter", "grid_size", "prepare_slices"]

IVDM3SEG_AFFINE = np.diag([2.0, 1.25, 1.25, 1.0])
"""The affine assumed when none is given: IVDM3Seg's 2.0 x 1.25 x 1.25 mm voxels, RAS."""
MIN_DISC_MM3 = 300.0
"""Components smaller than this are specks, not discs (a lumbar disc is ~5000-10000 mm^3)."""


def grid_size(
    plane: tuple[int, int], spacing: tuple[float, float], pixel_mm: float
) -> tuple[int, int]:
    """In-plane size (H, W) of a (Y, Z) slice of ``spacing`` mm pixels resampled to ``pixel_mm``."""
    return tuple(max(1, round(n * s / pixel_mm)) for n, s in zip(plane, spacing, strict=True))


def prepare_slices(
    image: np.ndarray, affine: np.ndarray, pixel_mm: float
) -> tuple[torch.Tensor, tuple[int, int]]:
    """Normalized sagittal slices at ``pixel_mm``: (X, 4, H, W) float32, and the RAS in-plane
    shape (Y, Z) to resample predictions back to.

    Args:
        image: (4, X, Y, Z) Dixon volumes in file orientation.
        affine: (4, 4) voxel -> world, mm.
        pixel_mm: in-plane pixel size of the network, mm.
    """
    canonical, _ = to_canonical(image, affine)
    spacing = canonical_spacing(affine)
    slices = torch.from_numpy(normalize(np.ascontiguousarray(canonical))).transpose(0, 1)
    plane = tuple(slices.shape[-2:])
    target = grid_size(plane, spacing[1:], pixel_mm)
    if target != plane:
        slices = F.interpolate(slices, size=target, mode="bilinear", align_corners=False)
    return slices.contiguous(), plane


class VolumeSegmenter:
    """Mixin: ``segment(image, affine)`` for a network mapping (B, 4, H, W) to (B, K, H, W) logits.

    The network's config must have ``pixel_mm``.
    """

    def segment(
        self,
        image: np.ndarray,
        affine: np.ndarray | None = None,
        batch_size: int = 6,
        progress: Callable[[int], None] | None = None,
        min_disc_mm3: float = MIN_DISC_MM3,
        precision: str = "fp32",
    ) -> tuple[np.ndarray, list[Disc]]:
        """Segment one subject: disc labels (file orientation, 0/1) and the discs, head to feet.

        Args:
            image: (4, X, Y, Z) Dixon volumes (fat, in-phase, opposed-phase, water), any units.
            affine: (4, 4) voxel -> world, mm; default IVDM3Seg's voxels (:data:`IVDM3SEG_AFFINE`).
            batch_size: slices per forward pass.
            progress: called with the number of slices done after each batch.
            min_disc_mm3: components smaller than this are dropped.
            precision: ``fp32``, or ``bf16`` (bfloat16 convolutions through core-ops'
                :mod:`~convsuite.core_ops.precision`, on a converted copy of the network; this
                network is left as it is).

        Returns:
            labels (X, Y, Z) uint8 and the discs (:class:`~convsuite.medseg.data.discs.Disc`).

        Raises:
            InputError: not 4 modalities of a 3-D volume, NaN values, an unknown precision.
        """
        check_precision(precision)
        image = np.asarray(image)
        affine = IVDM3SEG_AFFINE if affine is None else np.asarray(affine, dtype=np.float64)
        if image.ndim != 4 or image.shape[0] != len(self.config.modalities):
            raise InputError("image", f"must be (4, X, Y, Z) Dixon volumes, got {image.shape}")
        if not np.isfinite(image).all():
            raise InputError("image", "holds NaN or infinite values")
        net = self if precision == "fp32" else prepare_for_inference(copy.deepcopy(self), precision)
        with inference_mode(precision):
            probability = net.disc_probability(image, affine, batch_size, progress)
        canonical = (probability > 0.5).astype(np.uint8)
        _, ornt = to_canonical(image[0], affine)
        labels = np.ascontiguousarray(from_canonical(canonical, ornt))
        return find_discs(labels, affine, min_disc_mm3)

    @torch.inference_mode()
    def disc_probability(
        self,
        image: np.ndarray,
        affine: np.ndarray,
        batch_size: int = 6,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Disc probability in RAS axis order: (X, Y, Z) float32 (see :meth:`segment`)."""
        slices, plane = prepare_slices(image, affine, self.config.pixel_mm)
        height, width = slices.shape[-2:]
        pad = (0, -width % 16, 0, -height % 16)
        device = next(self.parameters()).device
        out = []
        for start in range(0, slices.shape[0], batch_size):
            batch = F.pad(slices[start : start + batch_size], pad).to(device)
            logits = self(batch)[..., :height, :width].float()
            if tuple(logits.shape[-2:]) != plane:  # logits, not probabilities (as in training)
                logits = F.interpolate(logits, size=plane, mode="bilinear", align_corners=False)
            out.append(logits.softmax(dim=1)[:, 1].cpu())
            if progress is not None:
                progress(min(start + batch_size, slices.shape[0]))
        return torch.cat(out).numpy()
