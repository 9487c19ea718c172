"""The bundled monitor and the demo: they load, classify held-out maps, flag mixed-type maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from convsuite_dev.testing import run_notebook

from convsuite.semicon import PATTERNS, SimulationOptions, WaferMonitor, simulate_wafer_maps
from convsuite.semicon.demo import run as run_demo

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


def test_bundled_monitor_classifies_held_out_full_resolution_maps() -> None:
    monitor = WaferMonitor.load()
    assert monitor.classes == PATTERNS and "simulated" in monitor.card.intended_use.lower()
    maps = simulate_wafer_maps(2 * len(PATTERNS), 4242, SimulationOptions())
    results = monitor.classify(maps, batch_size=9)
    accuracy = np.mean([r.class_name == m.label for r, m in zip(results, maps, strict=True)])
    assert accuracy >= 0.9, accuracy


def test_demo_flags_mixed_maps_more_often_than_known_ones(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    summary = result.summary
    assert summary["closed_set_accuracy"] >= 0.9
    assert summary["mixed_flagged_novel"] > summary["false_alarm_rate"] + 0.3, summary
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in result.figures)


def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    printed = run_notebook(NOTEBOOK, tmp_path)
    assert "flagged novel" in printed
