"""Readers, writers, the xarray view, preprocessing and the simulator of EELS spectrum images."""

from convsuite.materials.data.io import (
    LAZY_ABOVE_BYTES,
    EnergyAxis,
    as_spectrum_image,
    check_window,
    energy_axis,
    read_spectrum_image,
    write_signal,
)
from convsuite.materials.data.simulate import ANOMALY_KINDS, AnomalySpec, simulate_cube
from convsuite.materials.data.xarray import from_xarray, to_xarray

__all__ = [
    "ANOMALY_KINDS",
    "LAZY_ABOVE_BYTES",
    "AnomalySpec",
    "EnergyAxis",
    "as_spectrum_image",
    "check_window",
    "energy_axis",
    "from_xarray",
    "read_spectrum_image",
    "simulate_cube",
    "to_xarray",
    "write_signal",
]
