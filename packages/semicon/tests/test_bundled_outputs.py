"""The bundled checkpoint gives the outputs recorded when it was trained (a guard for refactors).

``data/bundled_outputs.npz`` was recorded from the weights of the recipe run of 2026-12-02 (the
``small`` preset with the shape profile and clump statistics), on one thread::

    maps = simulate_wafer_maps(4, seed=20260, options=SimulationOptions(defects_scale=0.05),
                               patterns=("center", "scratch", "edge-ring", "random"))
    monitor = WaferMonitor.from_pretrained()
    x = batch_wafer_maps(maps, 4096)
    features = monitor.net.features(x); logits = monitor.net.forward_head(features)
    novelty_features = monitor.net.novelty_features(x, features)
    novelty = monitor.detector.score(novelty_features.numpy())
    np.savez_compressed(..., coords=x.coords.numpy().astype(np.int16), features=features.numpy(),
                        logits=logits.numpy(), novelty_features=novelty_features.numpy(),
                        novelty=novelty)

The input is stored (``coords``: (N, 3) batch, row, col on the 4096 grid), so the check does not
depend on the simulator. (The previous weights' recorded outputs were reproduced bit for bit after
the input layer moved to core-ops' k = s convolution, before this retraining.) Re-recorded
2026-12-02 after a fresh recipe run with the fused class-Gaussian detector (issue 19 part 2): the
network's tensors, features and logits came out bit for bit the same as before; only ``novelty``
changed (the detector's score).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from convsuite.core_ops.hub import create_model
from convsuite.core_ops.layers import SparseTensor
from convsuite.semicon.model import SparseWaferNet
from convsuite.semicon.monitor import WaferMonitor

RECORDED = np.load(Path(__file__).parent / "data" / "bundled_outputs.npz")


def _recorded_input() -> SparseTensor:
    coords = torch.from_numpy(RECORDED["coords"].astype(np.int64))
    return SparseTensor(coords, torch.ones(len(coords), 1), (4096, 4096), 4)


@pytest.mark.parametrize(
    "load",
    [
        lambda: SparseWaferNet.from_pretrained("wafer_monitor_small"),
        lambda: SparseWaferNet.from_pretrained(),
        lambda: create_model("wafer_sparse", pretrained="wafer_monitor_small"),
        lambda: WaferMonitor.from_pretrained().net,
    ],
    ids=["by-name", "default", "create_model", "monitor"],
)
def test_wafer_monitor_small_network_gives_the_recorded_outputs(load) -> None:
    net = load()
    assert isinstance(net, SparseWaferNet) and not net.training
    with torch.no_grad():
        features = net.features(_recorded_input())
        logits = net.forward_head(features)
    np.testing.assert_allclose(features.numpy(), RECORDED["features"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(logits.numpy(), RECORDED["logits"], rtol=0, atol=1e-6)
    with torch.no_grad():
        novelty_features = net.novelty_features(_recorded_input(), features)
    np.testing.assert_allclose(novelty_features.numpy(), RECORDED["novelty_features"], atol=1e-6)


def test_wafer_monitor_small_detector_gives_the_recorded_novelty_scores() -> None:
    monitor = WaferMonitor.from_pretrained("wafer_monitor_small")
    novelty = monitor.detector.score(RECORDED["novelty_features"])
    np.testing.assert_allclose(novelty, RECORDED["novelty"], rtol=0, atol=1e-6)
