"""Whole-volume inference for the 2-D disc networks: sagittal slices in batches, discs out.

Shared by IVD-Net and its fusion baselines (a mixin, so ``IVDNet.from_pretrained().segment(...)``
works): the volume is brought to RAS by its affine, each modality normalized, every sagittal slice
resampled in-plane to the pixel size the weights expect (``config.pixel_mm``) and zero-padded to a
multiple of 16; the network runs on batches of slices; the logits are resampled back (bilinear, as
the training loss sees them), the disc probability thresholded at 0.5, put back into the file's
axis order, and split into discs (:func:`~convsuite.medseg.data.discs.find_discs`).

Sub-pixel shifts (``shifts=True``, the default): a network coarser than the scan (the ``small``
preset's 2.5 mm on IVDM3Seg's 1.25 mm) samples the scan on one grid of its pixels. The slices are
then also moved by half a network pixel (one scan pixel at 2.5 / 1.25 mm) along each in-plane
axis, the network run on each of the 4 grids, each grid's logits brought back to the scan's grid
and moved back by the same amount, and the 4 averaged before the softmax: the shifted grids add
the midpoints between the first grid's pixel centres, so together they sample at the scan's pitch
(4x the network's work). No flips: the in-plane axes of a sagittal
slice are anterior-posterior and head-feet, which are not symmetric (the network counts discs from
the sacrum), and a left-right flip only reorders slices that a 2-D network sees one at a time.
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

__all__ = [
    "IVDM3SEG_AFFINE",
    "MIN_DISC_MM3",
    "VolumeSegmenter",
    "grid_size",
    "prepare_slices",
    "scan_slices",
    "subpixel_offsets",
]

IVDM3SEG_AFFINE = np.diag([2.0, 1.25, 1.25, 1.0])
"""The affine assumed when none is given: IVDM3Seg's 2.0 x 1.25 x 1.25 mm voxels, RAS."""
MIN_DISC_MM3 = 300.0
"""Components smaller than this are specks, not discs (a lumbar disc is ~5000-10000 mm^3)."""


def grid_size(
    plane: tuple[int, int], spacing: tuple[float, float], pixel_mm: float
) -> tuple[int, int]:
    """In-plane size (H, W) of a (Y, Z) slice of ``spacing`` mm pixels resampled to ``pixel_mm``."""
    return tuple(max(1, round(n * s / pixel_mm)) for n, s in zip(plane, spacing, strict=True))


def scan_slices(image: np.ndarray, affine: np.ndarray) -> tuple[torch.Tensor, tuple[float, float]]:
    """Normalized sagittal slices on the scan's own grid: (X, 4, Y, Z) float32 in RAS order, and
    their in-plane pixel size (Y, Z), mm.

    Args:
        image: (4, X, Y, Z) Dixon volumes in file orientation.
        affine: (4, 4) voxel -> world, mm.
    """
    canonical, _ = to_canonical(image, affine)
    spacing = canonical_spacing(affine)
    slices = torch.from_numpy(normalize(np.ascontiguousarray(canonical))).transpose(0, 1)
    return slices.contiguous(), (spacing[1], spacing[2])


def _resample(slices: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size), bilinear with centred pixels (unchanged when the size is)."""
    if tuple(slices.shape[-2:]) == tuple(size):
        return slices
    return F.interpolate(slices, size=size, mode="bilinear", align_corners=False)


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
    slices, spacing = scan_slices(image, affine)
    plane = tuple(slices.shape[-2:])
    return _resample(slices, grid_size(plane, spacing, pixel_mm)).contiguous(), plane


def subpixel_offsets(spacing: tuple[float, float], pixel_mm: float) -> list[tuple[int, int]]:
    """Shifts (dy, dz) in scan pixels of the grids that :meth:`VolumeSegmenter.segment` runs the
    network on with ``shifts=True``: 0 and half a network pixel along each in-plane axis where
    that is at least one scan pixel ([(0, 0), (0, 1), (1, 0), (1, 1)] for 2.5 mm on 1.25 mm),
    else 0 along that axis. The half pixel is rounded down to whole scan pixels: none for a
    network at 1.25 mm on 0.9-1.25 mm scans (its grid is not coarser by a scan pixel)."""
    steps = [int(pixel_mm / (2 * s) + 1e-6) for s in spacing]
    return [(dy, dz) for dy in sorted({0, steps[0]}) for dz in sorted({0, steps[1]})]


def _shift(x: torch.Tensor, dy: int, dz: int) -> torch.Tensor:
    """(N, C, H, W) moved by (dy, dz) >= 0 pixels: out[i, j] = x[i - dy, j - dz], edges repeated."""
    if dy == dz == 0:
        return x
    height, width = x.shape[-2:]
    return F.pad(x, (dz, 0, dy, 0), mode="replicate")[..., :height, :width]


def _unshift(x: torch.Tensor, dy: int, dz: int) -> torch.Tensor:
    """The inverse of :func:`_shift`: out[i, j] = x[i + dy, j + dz], edges repeated."""
    if dy == dz == 0:
        return x
    return F.pad(x, (0, dz, 0, dy), mode="replicate")[..., dy:, dz:]


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
        shifts: bool = True,
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
            shifts: also run the network on the grids moved by half a network pixel and average
                the logits (see the module's docstring; 4x the work when the network's pixels
                are twice the scan's, no change when they are not coarser).

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
            probability = net.disc_probability(image, affine, batch_size, progress, shifts)
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
        shifts: bool = True,
    ) -> np.ndarray:
        """Disc probability in RAS axis order: (X, Y, Z) float32 (see :meth:`segment`)."""
        slices, spacing = scan_slices(image, affine)
        plane = tuple(slices.shape[-2:])
        size = grid_size(plane, spacing, self.config.pixel_mm)
        offsets = subpixel_offsets(spacing, self.config.pixel_mm) if shifts else [(0, 0)]
        pad = (0, -size[1] % 16, 0, -size[0] % 16)
        device = next(self.parameters()).device
        out = []
        for start in range(0, slices.shape[0], batch_size):
            batch = slices[start : start + batch_size]
            total = None
            for dy, dz in offsets:
                grid = F.pad(_resample(_shift(batch, dy, dz), size), pad).to(device)
                logits = self(grid)[..., : size[0], : size[1]].float()
                # logits, not probabilities, are brought back (as in training) and averaged
                logits = _unshift(_resample(logits, plane), dy, dz)
                total = logits if total is None else total + logits
            out.append((total / len(offsets)).softmax(dim=1)[:, 1].cpu())
            if progress is not None:
                progress(min(start + batch_size, slices.shape[0]))
        return torch.cat(out).numpy()
