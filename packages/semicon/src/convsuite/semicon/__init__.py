"""convsuite-semicon: wafer defect-map monitoring with submanifold sparse convolutions.

After Frittoli, Carrera, Rossi et al., "Deep Open-Set Recognition for Silicon Wafer Production
Monitoring" (Pattern Recognition, 2022).

Quickstart::

    from convsuite.semicon import WaferMonitor, read_wafer_maps
    monitor = WaferMonitor.from_pretrained()         # bundled; or "model/" from `wafer-monitor train`
    for result in monitor.classify(read_wafer_maps(["wafer.csv"])):
        result.class_name, result.probability, result.is_novel

Importing this package is cheap: the names below load their modules (torch, scikit-learn) on first
use.
"""

from __future__ import annotations

from convsuite.core_ops.lazy import lazy_exports

_LAZY = {
    "PATTERNS": "convsuite.semicon.data",
    "SimulationOptions": "convsuite.semicon.data",
    "WaferMap": "convsuite.semicon.data",
    "read_wafer_map": "convsuite.semicon.data",
    "read_wafer_maps": "convsuite.semicon.data",
    "read_wm811k": "convsuite.semicon.data",
    "simulate_wafer_maps": "convsuite.semicon.data",
    "iter_wm811k": "convsuite.semicon.data",
    "convert_wm811k": "convsuite.semicon.data.convert",
    "simulate_novel_maps": "convsuite.semicon.data.novel",
    "SparseWaferNet": "convsuite.semicon.model",
    "WaferNetConfig": "convsuite.semicon.model",
    "batch_wafer_maps": "convsuite.semicon.model",
    "DenseWaferConfig": "convsuite.semicon.dense_baseline",
    "DenseWaferNet": "convsuite.semicon.dense_baseline",
    "FusedNoveltyDetector": "convsuite.semicon.openset",
    "NoveltyDetector": "convsuite.semicon.openset",
    "load_detector": "convsuite.semicon.openset",
    "Classification": "convsuite.semicon.monitor",
    "WaferMonitor": "convsuite.semicon.monitor",
    "fit_monitor": "convsuite.semicon.train",
    "holdout_protocol": "convsuite.semicon.protocol",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
