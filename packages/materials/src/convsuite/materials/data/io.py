"""Reading and writing EELS spectrum images with hyperspy / rosettasciio.

Anything rosettasciio reads (.dm3/.dm4 read-only, .hspy, .zspy, .emd, ...) comes in as a hyperspy
signal with two navigation axes (y, x) and one signal axis (energy loss). Cubes larger than
``lazy_above_bytes`` are opened lazily (dask) so they are processed in chunks. The energy axis is
taken from the signal's ``axes_manager`` (offset, dispersion and units), so cubes of any offset
and dispersion work; keV axes are converted to eV.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_path

__all__ = [
    "EnergyAxis",
    "LAZY_ABOVE_BYTES",
    "check_window",
    "energy_axis",
    "read_spectrum_image",
    "write_signal",
]

LAZY_ABOVE_BYTES = 1 << 30
"""Files larger than this (1 GiB) are opened lazily (dask arrays) unless ``lazy`` is given."""

_EV_PER_UNIT = {"ev": 1.0, "kev": 1e3, "mev": 1e-3}


@dataclass(frozen=True)
class EnergyAxis:
    """A calibrated, uniform energy-loss axis.

    Attributes:
        offset: energy of the first channel, eV.
        scale: dispersion, eV per channel (positive).
        size: number of channels.
    """

    offset: float
    scale: float
    size: int

    @property
    def values(self) -> np.ndarray:
        """(size,) float64 channel energies, eV."""
        return self.offset + self.scale * np.arange(self.size)

    @property
    def stop(self) -> float:
        """Energy of the last channel, eV."""
        return self.offset + self.scale * (self.size - 1)


def energy_axis(signal: Any, source: str | os.PathLike[str] = "signal") -> EnergyAxis:
    """The calibrated energy axis of a hyperspy spectrum image (its one signal axis).

    Raises:
        InputError: not one signal axis, or the axis has no energy units (eV, keV) or a
            non-positive dispersion.
    """
    axes = signal.axes_manager.signal_axes
    if len(axes) != 1:
        raise InputError(
            source, f"has {len(axes)} signal axes; an EELS spectrum image has one (energy loss)"
        )
    axis = axes[0]
    units = str(axis.units).strip().lower()
    if units not in _EV_PER_UNIT:
        raise InputError(
            source,
            f"has no energy axis: its signal axis {str(axis.name)!r} is in {str(axis.units)!r}, "
            "not eV",
        )
    if not getattr(axis, "is_uniform", True):
        values = np.asarray(axis.axis, dtype=np.float64) * _EV_PER_UNIT[units]
        steps = np.diff(values)
        if values.size < 2 or not np.allclose(steps, steps[0], rtol=1e-3):
            raise InputError(source, "energy axis is not uniform")
        return EnergyAxis(float(values[0]), float(steps[0]), int(values.size))
    scale = float(axis.scale) * _EV_PER_UNIT[units]
    if not np.isfinite(scale) or scale <= 0:
        raise InputError(source, f"energy dispersion must be positive, got {axis.scale!r}")
    return EnergyAxis(float(axis.offset) * _EV_PER_UNIT[units], scale, int(axis.size))


def check_window(axis: EnergyAxis, window: tuple[float, float], source: str = "signal") -> None:
    """Refuse an energy window (eV) that is empty or not inside ``axis``.

    Raises:
        InputError: ``window`` is not increasing or reaches outside the axis.
    """
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise InputError(source, f"energy window {low:g}-{high:g} eV is empty")
    if low < axis.offset or high > axis.stop:
        raise InputError(
            source,
            f"energy window {low:g}-{high:g} eV is outside the energy axis "
            f"({axis.offset:g}-{axis.stop:g} eV)",
        )


def _hyperspy():
    import hyperspy.api as hs

    return hs


def read_spectrum_image(path: str | os.PathLike[str], lazy: bool | None = None) -> Any:
    """Read an EELS spectrum image (y, x | energy) with hyperspy, as an ``EELSSpectrum``.

    Args:
        path: any file rosettasciio reads: .dm3/.dm4, .hspy, .zspy, .emd, ...
        lazy: open lazily (dask); None: lazily when the file is over :data:`LAZY_ABOVE_BYTES`.

    Returns:
        an ``exspy.signals.EELSSpectrum`` (``LazyEELSSpectrum`` when lazy) with two navigation
        axes and a calibrated energy axis in eV.

    Raises:
        InputError: missing, unreadable or truncated file, more than one signal in it, not a
            2-D map of spectra, no energy axis, or every value NaN.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file does not exist")
    if lazy is None:
        lazy = path.stat().st_size > LAZY_ABOVE_BYTES
    hs = _hyperspy()
    try:
        loaded = hs.load(path, lazy=lazy)
    except Exception as error:  # rosettasciio raises whatever its readers raise
        raise InputError(path, f"is not a readable spectrum image ({error})") from None
    if isinstance(loaded, list):
        cubes = [s for s in loaded if s.axes_manager.signal_dimension == 1]
        if len(cubes) != 1:
            raise InputError(path, f"holds {len(loaded)} signals, not one spectrum image")
        loaded = cubes[0]
    return as_spectrum_image(loaded, path)


def as_spectrum_image(signal: Any, source: str | os.PathLike[str] = "signal") -> Any:
    """``signal`` as an ``EELSSpectrum`` checked to be a (y, x | energy) cube with data.

    Raises:
        InputError: see :func:`read_spectrum_image`.
    """
    import exspy

    if signal.axes_manager.signal_dimension != 1 or signal.axes_manager.navigation_dimension != 2:
        raise InputError(
            source,
            f"is not a spectrum image: axes {signal.axes_manager._get_dimension_str()}, "
            "need (x, y | energy)",
        )
    energy_axis(signal, source)
    if not isinstance(signal, exspy.signals.EELSSpectrum):
        signal = signal.deepcopy() if not signal._lazy else signal
        signal.set_signal_type("EELS")
    try:
        if signal._lazy:  # a strided sample: a whole pass over a big cube is the pipeline's job
            import dask.array as da

            sample = signal.data[..., :: max(1, signal.data.shape[-1] // 64)]
            any_finite = bool(da.isfinite(sample).any().compute())
        else:
            any_finite = bool(np.isfinite(signal.data).any())
    except Exception as error:  # a lazy read of a file cut short fails here
        raise InputError(source, f"data cannot be read ({error})") from None
    if not any_finite:
        raise InputError(source, "every value is NaN (or infinite)")
    return signal


def write_signal(signal: Any, path: str | os.PathLike[str]) -> Path:
    """Write a hyperspy signal to one file ``path`` (format from the suffix: .hspy) atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        final = tmp.with_name(tmp.name.removesuffix(".part") + path.suffix)
        try:
            signal.save(final, overwrite=True)
            os.replace(final, tmp)
        finally:
            if final.exists():
                final.unlink()
    return path
