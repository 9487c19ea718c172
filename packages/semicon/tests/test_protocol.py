"""The hold-each-pattern-out protocol: both methods, every held-out pattern, means over them."""

from __future__ import annotations

import torch

from convsuite.core_ops.hub import model_config
from convsuite.semicon.data import SimulationOptions, simulate_wafer_maps
from convsuite.semicon.protocol import holdout_protocol, summarize


def test_each_pattern_is_novel_in_turn_for_both_methods() -> None:
    torch.set_num_threads(1)
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
        assert 0.0 <= result.metrics["auroc"] <= 1.0
    summary = summarize(results)
    sparse = [r.metrics["auroc"] for r in results if r.method == "sparse"]
    assert summary["sparse"]["auroc"] == sum(sparse) / 2
