"""The xarray view of a spectrum image (none exists upstream): dims ``y``, ``x``, ``energy_loss``.

``to_xarray`` keeps hyperspy's calibration as coordinates with ``units`` attributes and keeps a lazy
(dask) signal lazy; ``from_xarray`` builds the ``EELSSpectrum`` back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.materials.data.io import as_spectrum_image, energy_axis

__all__ = ["DIMS", "from_xarray", "to_xarray"]

DIMS = ("y", "x", "energy_loss")


def to_xarray(signal: Any) -> Any:
    """A ``xarray.DataArray`` (y, x, energy_loss) sharing the signal's data (dask when lazy).

    Coordinates: ``y`` and ``x`` in the navigation axes' units, ``energy_loss`` in eV; each
    coordinate has a ``units`` attribute; the signal's title becomes the array's name.
    """
    import xarray as xr

    signal = as_spectrum_image(signal)
    x_axis, y_axis = signal.axes_manager.navigation_axes
    energy = energy_axis(signal)
    coords = {
        "y": ("y", np.asarray(y_axis.axis), {"units": str(y_axis.units)}),
        "x": ("x", np.asarray(x_axis.axis), {"units": str(x_axis.units)}),
        "energy_loss": ("energy_loss", energy.values, {"units": "eV"}),
    }
    title = str(signal.metadata.get_item("General.title", "")) or None
    return xr.DataArray(
        signal.data, dims=DIMS, coords=coords, name=title, attrs={"signal_type": "EELS"}
    )


def _uniform(values: np.ndarray, name: str) -> tuple[float, float]:
    if values.size == 1:
        return float(values[0]), 1.0
    steps = np.diff(values.astype(np.float64))
    if not np.allclose(steps, steps[0], rtol=1e-4) or steps[0] == 0:
        raise InputError("DataArray", f"coordinate {name!r} is not uniformly spaced")
    return float(values[0]), float(steps[0])


def from_xarray(array: Any) -> Any:
    """The ``EELSSpectrum`` (lazy when the array holds dask data) of a (y, x, energy_loss) array.

    Raises:
        InputError: other dims, or a coordinate that is not uniformly spaced.
    """
    import exspy

    if tuple(array.dims) != DIMS:
        raise InputError("DataArray", f"dims must be {DIMS}, got {tuple(array.dims)}")
    lazy = not isinstance(array.data, np.ndarray)
    cls = exspy.signals.LazyEELSSpectrum if lazy else exspy.signals.EELSSpectrum
    signal = cls(array.data)
    axes = signal.axes_manager
    for axis, dim in zip([axes[1], axes[0], axes[2]], DIMS, strict=True):
        values = (
            np.asarray(array[dim].values) if dim in array.coords else np.arange(array[dim].size)
        )
        axis.offset, axis.scale = _uniform(values, dim)
        axis.name = dim
        axis.units = array[dim].attrs.get("units", "eV" if dim == "energy_loss" else "px")
    if array.name:
        signal.metadata.General.title = str(array.name)
    return signal
