"""Wafer defect maps: the WaferMap type, readers of CSV/.npz defect lists and WM-811K, a simulator."""

from convsuite.semicon.data.readers import (
    HEADER_KEYS,
    WM811KRecord,
    iter_wm811k,
    read_wafer_map,
    read_wafer_maps,
    read_wm811k,
    write_wafer_csv,
    write_wafer_npz,
)
from convsuite.semicon.data.simulate import (
    WM811K_PREVALENCE,
    SimulationOptions,
    iter_simulated,
    simulate_wafer_map,
    simulate_wafer_maps,
    write_simulated,
)
from convsuite.semicon.data.wafer_map import (
    PATTERNS,
    WM811K_LABELS,
    WaferMap,
    grid_to_mm,
    in_disk,
    mm_to_grid,
    normalize_label,
)

__all__ = [
    "HEADER_KEYS",
    "PATTERNS",
    "WM811KRecord",
    "WM811K_LABELS",
    "WM811K_PREVALENCE",
    "SimulationOptions",
    "WaferMap",
    "grid_to_mm",
    "in_disk",
    "iter_simulated",
    "iter_wm811k",
    "mm_to_grid",
    "normalize_label",
    "read_wafer_map",
    "read_wafer_maps",
    "read_wm811k",
    "simulate_wafer_map",
    "simulate_wafer_maps",
    "write_simulated",
    "write_wafer_csv",
    "write_wafer_npz",
]
