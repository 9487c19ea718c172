"""Preprocessing of a spectrum image for the VAE, as the reference, and the per-pixel target.

Network input (the reference's): a Gaussian blur with sigma 0.5 (pixels and channels), a 3 x 3
spatial mean, the energy range cropped and linearly resampled from the calibrated axis onto the
network's grid, then 1-99 percentile scaling to [0, 1]. The *score* compares each pixel's own
spectrum with its reconstruction: the same crop, resampling and scaling, with the blur along
energy only and no spatial mean (a 3 x 3 mean before scoring spreads a single anomalous pixel over
nine and caps the F1 of even a perfect reconstruction at ~0.2).

A network trained with ``EELSVAEConfig.spatial_mean=False`` (not the reference's; see
:mod:`convsuite.materials.model`) is fed each pixel's own spectrum instead of the 3 x 3 mean
(:meth:`Prepared.network_view`).

Everything works on a band of rows at a time, so a lazy (dask) cube is read and prepared in
pieces; :func:`prepare_band` takes one more row above and below than it returns for the 3 x 3 mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_filter1d, uniform_filter

from convsuite.core_ops.errors import InputError
from convsuite.materials.data.io import EnergyAxis

__all__ = ["EnergyGrid", "Prepared", "Resampler", "prepare", "prepare_band", "scaling"]

BLUR_SIGMA = 0.5
PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class EnergyGrid:
    """The network's energy grid: ``size`` channels from ``start`` to ``stop`` eV inclusive."""

    start: float
    stop: float
    size: int

    @property
    def values(self) -> np.ndarray:
        """(size,) float64 energies, eV."""
        return np.linspace(self.start, self.stop, self.size)


@dataclass(frozen=True)
class Resampler:
    """Linear resampling from a calibrated axis onto a grid, restricted to the channels needed.

    Attributes:
        first, last: native channels [first, last) read from the cube.
        low: (size,) index of the lower neighbour of each grid energy within that crop.
        weight: (size,) weight of the upper neighbour.
    """

    first: int
    last: int
    low: np.ndarray
    weight: np.ndarray

    @classmethod
    def between(cls, axis: EnergyAxis, grid: EnergyGrid, source: str = "signal") -> Resampler:
        """Raises InputError when ``axis`` does not cover ``grid``."""
        tolerance = 1e-6 * max(1.0, abs(grid.stop))
        if grid.start < axis.offset - tolerance or grid.stop > axis.stop + tolerance:
            raise InputError(
                source,
                f"energy axis {axis.offset:g}-{axis.stop:g} eV does not cover the network's "
                f"{grid.start:g}-{grid.stop:g} eV",
            )
        position = np.clip((grid.values - axis.offset) / axis.scale, 0, axis.size - 1)
        first = int(np.floor(position.min()))
        last = min(axis.size, int(np.floor(position.max())) + 2)
        local = position - first
        low = np.minimum(np.floor(local).astype(np.int64), last - first - 2)
        low = np.maximum(low, 0)
        return cls(first, last, low, (local - low).astype(np.float32))

    def __call__(self, crop: np.ndarray) -> np.ndarray:
        """(..., last - first) native channels -> (..., size) on the grid."""
        if crop.shape[-1] == 1:
            return np.repeat(crop, self.low.size, axis=-1)
        return crop[..., self.low] * (1 - self.weight) + crop[..., self.low + 1] * self.weight


def _clean(block: np.ndarray) -> np.ndarray:
    block = np.asarray(block, dtype=np.float32)
    return np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)


def scaling(data, resampler: Resampler, max_pixels: int = 4096) -> tuple[float, float]:
    """The 1st and 99th percentiles of the cropped cube over a strided sample of its pixels.

    ``data`` is (y, x, E) numpy or dask; at most ``max_pixels`` pixels are read.

    Raises:
        InputError: the sampled values are all equal (nothing to scale).
    """
    height, width = data.shape[:2]
    step = max(1, int(np.ceil(np.sqrt(height * width / max_pixels))))
    if isinstance(data, np.ndarray):
        sample = data[::step, ::step, resampler.first : resampler.last]
    else:  # one band of rows at a time, so a lazy cube is never read whole at once
        band = max(step, (64 // step) * step)
        sample = np.concatenate(
            [
                np.asarray(
                    data[start : start + band : step, ::step, resampler.first : resampler.last]
                )
                for start in range(0, height, band)
            ]
        )
    values = resampler(_clean(sample))
    low, high = (float(v) for v in np.percentile(values, PERCENTILES))
    if not high > low:
        raise InputError("signal", "the cube is constant over the network's energy range")
    return low, high


@dataclass
class Prepared:
    """A band of a preprocessed cube, on the network's grid, scaled to [0, 1].

    Attributes:
        network_input: (rows, x, E) float32, blurred and 3 x 3 averaged.
        own: (rows, x, E) float32, each pixel's own spectrum (blurred along energy only).
    """

    network_input: np.ndarray
    own: np.ndarray

    def network_view(self, spatial_mean: bool = True) -> np.ndarray:
        """What a network is fed: ``network_input`` (the reference's 3 x 3 mean) or, for a
        network trained without it (``EELSVAEConfig.spatial_mean`` False), ``own``."""
        return self.network_input if spatial_mean else self.own


def prepare_band(
    block: np.ndarray,
    resampler: Resampler,
    low: float,
    high: float,
    top: int = 1,
    bottom: int = 1,
) -> Prepared:
    """Preprocess rows of a cube read with ``top``/``bottom`` extra rows of context.

    Args:
        block: (rows + top + bottom, x, last - first) native counts (the resampler's crop).
        resampler: from the cube's axis to the network's grid.
        low, high: the cube's percentiles (:func:`scaling`).
        top, bottom: context rows above and below (0 at the cube's edges).

    Returns:
        the band's rows without the context rows.
    """
    block = _clean(block)
    blurred = gaussian_filter(block, BLUR_SIGMA, mode="nearest", truncate=4.0)
    averaged = uniform_filter(blurred, size=(3, 3, 1), mode="nearest")
    own = gaussian_filter1d(block, BLUR_SIGMA, axis=-1, mode="nearest", truncate=4.0)
    rows = slice(top, block.shape[0] - bottom)
    span = high - low

    def finish(cube: np.ndarray) -> np.ndarray:
        return np.clip((resampler(cube[rows]) - low) / span, 0.0, 1.0).astype(np.float32)

    return Prepared(finish(averaged), finish(own))


def prepare(data, axis: EnergyAxis, grid: EnergyGrid, source: str = "signal") -> Prepared:
    """Preprocess a whole (y, x, E) cube in memory (numpy or dask; see :func:`prepare_band`)."""
    resampler = Resampler.between(axis, grid, source)
    low, high = scaling(data, resampler)
    crop = data[:, :, resampler.first : resampler.last]
    if not isinstance(crop, np.ndarray):
        crop = crop.compute()
    return prepare_band(crop, resampler, low, high, top=0, bottom=0)
