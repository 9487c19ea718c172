"""The bundled monitor and the demo: they load, classify held-out maps, flag mixed-type maps."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convsuite.semicon import PATTERNS, SimulationOptions, WaferMonitor, simulate_wafer_maps
from convsuite.semicon.demo import run as run_demo


def test_bundled_card_says_what_the_weights_expect_and_give() -> None:
    card = WaferMonitor.from_pretrained("wafer_monitor_small").card
    assert card.card_version == 2
    assert card.inputs == {
        "grid": 4096,
        "pitch_mm": 300 / 4096,
        "diameter_mm": 300.0,
        "die_level": False,
    }
    assert card.outputs["classes"] == list(PATTERNS)
    assert card.outputs["novelty"]["gmm_components"] == 9
    assert card.outputs["class_from"] == "class Gaussians' posterior"  # FusedNoveltyDetector
    assert card.files == {"novelty": "wafer_monitor_small.novelty.json"}
    assert "gmm_components" not in card.metrics and card.metrics["val_accuracy"] == 1.0


def test_bundled_monitor_classifies_held_out_full_resolution_maps() -> None:
    monitor = WaferMonitor.from_pretrained()
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
