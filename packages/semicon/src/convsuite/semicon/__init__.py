"""convsuite-semicon: wafer defect-map monitoring with submanifold sparse convolutions.

After Frittoli, Carrera, Rossi et al., "Deep Open-Set Recognition for Silicon Wafer Production
Monitoring" (Pattern Recognition, 2022).

Quickstart::

    from convsuite.semicon import WaferMonitor, read_wafer_maps
    monitor = WaferMonitor.load("model/")            # written by `wafer-monitor train`
    for result in monitor.classify(read_wafer_maps(["wafer.csv"])):
        result.class_name, result.probability, result.is_novel
"""

from convsuite.semicon.data import (
    PATTERNS,
    SimulationOptions,
    WaferMap,
    read_wafer_map,
    read_wafer_maps,
    read_wm811k,
    simulate_wafer_maps,
)
from convsuite.semicon.model import SparseWaferNet, WaferNetConfig, batch_wafer_maps, preset
from convsuite.semicon.monitor import Classification, WaferMonitor
from convsuite.semicon.openset import NoveltyDetector

__all__ = [
    "PATTERNS",
    "Classification",
    "NoveltyDetector",
    "SimulationOptions",
    "SparseWaferNet",
    "WaferMap",
    "WaferMonitor",
    "WaferNetConfig",
    "batch_wafer_maps",
    "preset",
    "read_wafer_map",
    "read_wafer_maps",
    "read_wm811k",
    "simulate_wafer_maps",
]
