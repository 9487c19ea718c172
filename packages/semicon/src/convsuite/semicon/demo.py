"""semicon's demo (entry point ``semicon`` of ``convsuite.demos``): known patterns and novel mixtures.

Simulates held-out full-resolution wafer maps of the nine known patterns, plus mixed-type maps (two
patterns on one wafer, e.g. a scratch across an edge ring) that the bundled monitor never saw, and
classifies all of them with the bundled monitor. Reports closed-set accuracy, the false-alarm rate on
known maps and the share of mixed maps flagged as novel; the figure shows example maps with the
monitor's verdict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convsuite.core_ops.demo import DemoResult
from convsuite.core_ops.figures import save_figure
from convsuite.semicon.data import PATTERNS, SimulationOptions, WaferMap, simulate_wafer_maps
from convsuite.semicon.figures import examples_figure
from convsuite.semicon.monitor import WaferMonitor

__all__ = ["mixed_maps", "run"]

_SEED = 2026  # held out: the bundled monitor was trained on seed 7
_PER_PATTERN = 4
_MIXED = 18
_MIX_PAIRS = (("scratch", "edge-ring"), ("center", "edge-loc"), ("donut", "scratch"))


def mixed_maps(n: int, seed: int, options: SimulationOptions) -> list[WaferMap]:
    """Mixed-type maps: the defects of two single-pattern maps on one wafer, labelled "a+b"."""
    maps = []
    for index in range(n):
        first, second = _MIX_PAIRS[index % len(_MIX_PAIRS)]
        a, b = simulate_wafer_maps(2, seed + index, options, patterns=(first, second))
        maps.append(
            WaferMap.from_coordinates(
                np.concatenate([a.coords, b.coords]),
                a.grid_shape,
                a.pitch_mm,
                a.diameter_mm,
                name=f"mixed_{index:03d}_{first}+{second}",
            )
        )
    return maps


def run(out_dir: Path) -> DemoResult:
    """Simulate known and mixed maps, classify them with the bundled monitor, draw examples."""
    out_dir = Path(out_dir)
    monitor = WaferMonitor.from_pretrained()
    options = SimulationOptions()
    known = simulate_wafer_maps(_PER_PATTERN * len(PATTERNS), _SEED, options)
    mixed = mixed_maps(_MIXED, _SEED + 1000, options)
    known_results = monitor.classify(known, batch_size=16)
    mixed_results = monitor.classify(mixed, batch_size=16)
    correct = [r.class_name == m.label for r, m in zip(known_results, known, strict=True)]
    summary = {
        "known_maps": len(known),
        "closed_set_accuracy": float(np.mean(correct)),
        "false_alarm_rate": float(np.mean([r.is_novel for r in known_results])),
        "mixed_maps": len(mixed),
        "mixed_flagged_novel": float(np.mean([r.is_novel for r in mixed_results])),
    }
    shown = [*zip(known[:: _PER_PATTERN * 2], known_results[:: _PER_PATTERN * 2], strict=True)]
    shown += [*zip(mixed[:3], mixed_results[:3], strict=True)]
    figure = save_figure(
        examples_figure(shown, monitor.threshold), out_dir / "wafer_examples.png", dpi=100
    )
    return DemoResult(
        title="Wafer defect maps: known failure patterns and novel mixed-type maps",
        summary=summary,
        figures=[figure],
        description=(
            f"{len(known)} held-out simulated wafers (4096 x 4096 grid, nine known patterns) and "
            f"{len(mixed)} mixed-type wafers (two patterns at once, never seen in training), "
            "classified by the bundled sparse monitor. Red titles: flagged as novel. The monitor "
            "was trained on simulated maps only."
        ),
    )
