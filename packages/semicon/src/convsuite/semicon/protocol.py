"""The open-set evaluation protocol: every pattern is the novel one in turn.

For each held-out pattern the sparse network and the binned dense baseline are trained on the other
patterns, their novelty detectors fitted, and both are scored on a test stream holding every pattern:
closed-set accuracy and macro-F1 on the known maps (the monitor's class: by default the class
Gaussians' posterior, see :func:`~convsuite.semicon.train.fit_monitor`), AUROC and OSCR of the
novelty score (and of the network head's max-softmax score, the paper's comparison), false-alarm
and detection rates at the threshold.
The means over held-out patterns are the figures the paper reports. With several seeds every run is
repeated per seed (initialisation, shuffling, augmentation, mixture; the maps stay the same), and
:func:`summarize` gives the mean over patterns and seeds and the spread (standard deviation) of the
per-seed means.

With a set of maps of patterns no class draws (:mod:`convsuite.semicon.data.novel`), each run also
reports ``novel_set_auroc`` (those maps against the known test maps), ``novel_set_detection`` (the
share flagged at the monitor's threshold, set for 5% false alarms on validation maps) and
``novel_set_detection_at_5`` (the share flagged at the threshold that flags 5% of the known test
maps).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convsuite.core_ops.hub import model_config
from convsuite.semicon.data import WaferMap
from convsuite.semicon.dense_baseline import DenseWaferConfig
from convsuite.semicon.metrics import novelty_auroc
from convsuite.semicon.model import WaferNetConfig
from convsuite.semicon.monitor import Classification, WaferMonitor
from convsuite.semicon.train import fit_monitor

__all__ = ["HoldoutResult", "holdout_protocol", "novel_set_metrics", "summarize"]


@dataclass(frozen=True)
class HoldoutResult:
    """One method's figures with one pattern held out (see the module docstring for the keys)."""

    method: str
    novel_pattern: str
    metrics: dict[str, float]
    seed: int = 0


def holdout_protocol(
    train_maps: Sequence[WaferMap],
    val_maps: Sequence[WaferMap],
    test_maps: Sequence[WaferMap],
    patterns: Sequence[str] | None = None,
    sparse_config: WaferNetConfig | None = None,
    dense_config: DenseWaferConfig | None = None,
    epochs: int = 20,
    out_dir: str | os.PathLike[str] | None = None,
    seeds: Sequence[int] = (0,),
    novel_maps: Sequence[WaferMap] = (),
    on_result: Callable[[list[HoldoutResult]], None] | None = None,
    **fit_kwargs: Any,
) -> list[HoldoutResult]:
    """Hold out each pattern in turn; train, fit and score both methods on the same maps.

    Args:
        train_maps, val_maps, test_maps: labelled maps; the held-out pattern is removed from the
            first two and kept in the test stream, where it is the novelty.
        patterns: the patterns to hold out in turn; default: every label in ``train_maps``.
        sparse_config, dense_config: the networks; default: the ``small`` presets.
        epochs: epoch budget of every training run.
        out_dir: keeps each run's monitor under ``<out_dir>/<method>-<pattern>-s<seed>/``; None:
            nothing kept.
        seeds: every run is repeated once per seed.
        novel_maps: maps of patterns no class draws (unlabelled), scored by every run.
        on_result: called with the results so far after every run (e.g. to save them).
        **fit_kwargs: passed to :func:`convsuite.semicon.train.fit_monitor` (``batch_size``, ``lr``...).

    Returns:
        Per seed, held-out pattern and method ("sparse", "dense"), the metrics of
        ``WaferMonitor.evaluate`` (and the novel set's, see the module docstring).
    """
    patterns = list(patterns or sorted({m.label for m in train_maps if m.label is not None}))
    configs = {
        "sparse": sparse_config or model_config("wafer_sparse", "small"),
        "dense": dense_config or model_config("wafer_dense", "small"),
    }
    results = []
    for seed in seeds:
        for novel in patterns:
            known_train = [m for m in train_maps if m.label != novel]
            known_val = [m for m in val_maps if m.label != novel]
            for method, config in configs.items():
                run_dir = None if out_dir is None else Path(out_dir) / f"{method}-{novel}-s{seed}"
                monitor = fit_monitor(
                    known_train,
                    known_val,
                    config,
                    epochs=epochs,
                    out_dir=run_dir,
                    seed=seed,
                    **fit_kwargs,
                )
                classified = monitor.classify(test_maps)
                metrics = monitor.evaluate(test_maps, results=classified)
                if novel_maps:
                    metrics.update(
                        novel_set_metrics(monitor, test_maps, novel_maps, novel, classified)
                    )
                results.append(HoldoutResult(method, novel, metrics, seed))
                if on_result is not None:
                    on_result(list(results))
    return results


def novel_set_metrics(
    monitor: WaferMonitor,
    test_maps: Sequence[WaferMap],
    novel_maps: Sequence[WaferMap],
    held_out: str | None = None,
    results: Sequence[Classification] | None = None,
) -> dict[str, float]:
    """How well ``monitor`` flags ``novel_maps`` against the known maps of ``test_maps``.

    Returns:
        ``novel_set_auroc``, ``novel_set_detection`` (share above the monitor's threshold) and
        ``novel_set_detection_at_5`` (share above the 95th percentile of the known maps' scores,
        the threshold with 5% false alarms on them); maps labelled ``held_out`` or outside the
        monitor's classes are left out of the known ones. ``results``: ``monitor.classify``'s
        results for ``test_maps`` when already computed.
    """
    results = monitor.classify(test_maps) if results is None else results
    known_scores = np.array(
        [
            r.novelty_score
            for m, r in zip(test_maps, results, strict=True)
            if m.label != held_out and m.label in monitor.classes
        ]
    )
    novel_scores = np.array([r.novelty_score for r in monitor.classify(novel_maps)])
    at_5 = float(np.quantile(known_scores, 0.95))
    return {
        "novel_set_auroc": novelty_auroc(
            np.concatenate([known_scores, novel_scores]),
            np.r_[np.zeros(len(known_scores), bool), np.ones(len(novel_scores), bool)],
        ),
        "novel_set_detection": float(np.mean(novel_scores > monitor.threshold)),
        "novel_set_detection_at_5": float(np.mean(novel_scores > at_5)),
    }


def summarize(results: Sequence[HoldoutResult]) -> dict[str, dict[str, float]]:
    """Per method, the mean of each metric over held-out patterns and seeds, and ``<metric>_sd``,
    the standard deviation over seeds of the per-seed means (0 with one seed)."""
    summary: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r.method for r in results):
        rows = [r for r in results if r.method == method]
        keys = sorted(set().union(*(r.metrics for r in rows)))
        seeds = list(dict.fromkeys(r.seed for r in rows))
        summary[method] = {}
        for key in keys:
            per_seed = [
                np.mean([r.metrics[key] for r in rows if r.seed == seed and key in r.metrics])
                for seed in seeds
            ]
            summary[method][key] = float(np.mean(per_seed))
            summary[method][f"{key}_sd"] = float(np.std(per_seed))
    return summary
