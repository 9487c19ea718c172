"""The hold-each-pattern-out protocol: both methods, every held-out pattern, means over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from convsuite.core_ops.hub import model_config
from convsuite.semicon.data import SimulationOptions, simulate_wafer_maps
from convsuite.semicon.monitor import WaferMonitor
from convsuite.semicon.protocol import holdout_protocol, summarize


@pytest.mark.slow
def test_each_pattern_is_novel_in_turn_for_both_methods(tmp_path: Path) -> None:
    options = SimulationOptions(grid=256, defects_scale=0.05)
    patterns = ("center", "edge-ring", "random")
    train = simulate_wafer_maps(48, seed=30, options=options, patterns=patterns)
    val = simulate_wafer_maps(18, seed=31, options=options, patterns=patterns)
    test = simulate_wafer_maps(18, seed=32, options=options, patterns=patterns)
    results = holdout_protocol(
        train,
        val,
        test,
        patterns=("center", "random"),
        sparse_config=model_config("wafer_sparse", "tiny"),
        dense_config=model_config("wafer_dense", "tiny"),
        epochs=10,
        out_dir=tmp_path,
        lr=5e-3,
        batch_size=8,
        logger=False,
    )
    assert [(r.method, r.novel_pattern) for r in results] == [
        ("sparse", "center"),
        ("dense", "center"),
        ("sparse", "random"),
        ("dense", "random"),
    ]
    for result in results:
        # two easy known patterns: the closed-set task is learned in ten epochs
        assert result.metrics["accuracy"] > 0.75, result
        # The reported AUROC is scikit-learn's on the saved monitor's novelty scores.
        run_dir = tmp_path / f"{result.method}-{result.novel_pattern}-s{result.seed}"
        monitor = WaferMonitor.from_pretrained(run_dir)
        scores = [r.novelty_score for r in monitor.classify(test)]
        is_novel = [m.label == result.novel_pattern for m in test]
        assert result.metrics["auroc"] == pytest.approx(roc_auc_score(is_novel, scores), abs=1e-6)
    # Uniform "random" maps are unlike centre blobs and edge rings: both methods flag them.
    assert all(r.metrics["auroc"] > 0.9 for r in results if r.novel_pattern == "random")
    summary = summarize(results)
    sparse = [r.metrics["auroc"] for r in results if r.method == "sparse"]
    assert summary["sparse"]["auroc"] == pytest.approx(np.mean(sparse))
    assert summary["sparse"]["auroc"] > 0.7  # well above chance (0.5); 0.9 on this seed


def test_summary_over_seeds_gives_mean_and_spread_of_the_per_seed_means() -> None:
    from convsuite.semicon.protocol import HoldoutResult

    results = [
        HoldoutResult("sparse", pattern, {"auroc": value}, seed)
        for seed, values in ((0, (0.9, 1.0)), (1, (0.8, 0.9)))
        for pattern, value in zip(("center", "donut"), values, strict=True)
    ]
    summary = summarize(results)["sparse"]
    assert summary["auroc"] == pytest.approx(0.9)  # per-seed means 0.95 and 0.85
    assert summary["auroc_sd"] == pytest.approx(0.05)
