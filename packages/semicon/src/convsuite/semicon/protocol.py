"""The open-set evaluation protocol: every pattern is the novel one in turn.

For each held-out pattern the sparse network and the binned dense baseline are trained on the other
patterns, their novelty detectors fitted, and both are scored on a test stream holding every pattern:
closed-set accuracy and macro-F1 on the known maps, AUROC and OSCR of the GMM novelty score (and of
the max-softmax score, the paper's comparison), false-alarm and detection rates at the threshold.
The means over held-out patterns are the figures the paper reports.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convsuite.core_ops.hub import model_config
from convsuite.semicon.data import WaferMap
from convsuite.semicon.dense_baseline import DenseWaferConfig
from convsuite.semicon.model import WaferNetConfig
from convsuite.semicon.train import fit_monitor

__all__ = ["HoldoutResult", "holdout_protocol", "summarize"]


@dataclass(frozen=True)
class HoldoutResult:
    """One method's figures with one pattern held out (see the module docstring for the keys)."""

    method: str
    novel_pattern: str
    metrics: dict[str, float]


def holdout_protocol(
    train_maps: Sequence[WaferMap],
    val_maps: Sequence[WaferMap],
    test_maps: Sequence[WaferMap],
    patterns: Sequence[str] | None = None,
    sparse_config: WaferNetConfig | None = None,
    dense_config: DenseWaferConfig | None = None,
    epochs: int = 20,
    out_dir: str | os.PathLike[str] | None = None,
    seed: int = 0,
    **fit_kwargs: Any,
) -> list[HoldoutResult]:
    """Hold out each pattern in turn; train, fit and score both methods on the same maps.

    Args:
        train_maps, val_maps, test_maps: labelled maps; the held-out pattern is removed from the
            first two and kept in the test stream, where it is the novelty.
        patterns: the patterns to hold out in turn; default: every label in ``train_maps``.
        sparse_config, dense_config: the networks; default: the ``small`` presets.
        epochs: epoch budget of every training run.
        out_dir: keeps each run's monitor under ``<out_dir>/<method>-<pattern>/``; None: nothing kept.
        seed: seeds every run the same way.
        **fit_kwargs: passed to :func:`convsuite.semicon.train.fit_monitor` (``batch_size``, ``lr``...).

    Returns:
        Per method ("sparse", "dense") and held-out pattern, the metrics of ``WaferMonitor.evaluate``.
    """
    patterns = list(patterns or sorted({m.label for m in train_maps if m.label is not None}))
    configs = {
        "sparse": sparse_config or model_config("wafer_sparse", "small"),
        "dense": dense_config or model_config("wafer_dense", "small"),
    }
    results = []
    for novel in patterns:
        known_train = [m for m in train_maps if m.label != novel]
        known_val = [m for m in val_maps if m.label != novel]
        for method, config in configs.items():
            run_dir = None if out_dir is None else Path(out_dir) / f"{method}-{novel}"
            monitor = fit_monitor(
                known_train,
                known_val,
                config,
                epochs=epochs,
                out_dir=run_dir,
                seed=seed,
                **fit_kwargs,
            )
            results.append(HoldoutResult(method, novel, monitor.evaluate(test_maps)))
    return results


def summarize(results: Sequence[HoldoutResult]) -> dict[str, dict[str, float]]:
    """Per method, the mean of each metric over the held-out patterns."""
    summary: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r.method for r in results):
        rows = [r.metrics for r in results if r.method == method]
        keys = sorted(set().union(*rows))
        summary[method] = {k: float(np.mean([row[k] for row in rows if k in row])) for k in keys}
    return summary
