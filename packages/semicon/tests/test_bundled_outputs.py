"""The bundled checkpoint gives the outputs it gave before the refactor onto core-ops' hub.

``data/bundled_outputs.npz`` was recorded with the code of commit 776ae41 (before the refactor), on
one thread::

    maps = simulate_wafer_maps(4, seed=20260, options=SimulationOptions(defects_scale=0.05),
                               patterns=("center", "scratch", "edge-ring", "random"))
    monitor = WaferMonitor.load()                      # wafer_monitor_small
    x = batch_wafer_maps(maps, 4096)
    features = monitor.net.features(x); logits = monitor.net.forward_head(features)
    novelty = monitor.detector.score(features.numpy())
    np.savez_compressed(..., coords=x.coords.numpy().astype(np.int16), features=features.numpy(),
                        logits=logits.numpy(), novelty=novelty)

The input is stored (``coords``: (N, 3) batch, row, col on the 4096 grid), so the check does not
depend on the simulator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convsuite.core_ops.layers import SparseTensor
from convsuite.semicon.monitor import WaferMonitor

RECORDED = np.load(Path(__file__).parent / "data" / "bundled_outputs.npz")


def test_wafer_monitor_small_gives_the_recorded_outputs() -> None:
    monitor = WaferMonitor.load()
    coords = torch.from_numpy(RECORDED["coords"].astype(np.int64))
    x = SparseTensor(coords, torch.ones(len(coords), 1), (4096, 4096), 4)
    with torch.no_grad():
        features = monitor.net.features(x)
        logits = monitor.net.forward_head(features)
    np.testing.assert_allclose(features.numpy(), RECORDED["features"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(logits.numpy(), RECORDED["logits"], rtol=0, atol=1e-6)
    novelty = monitor.detector.score(features.numpy())
    np.testing.assert_allclose(novelty, RECORDED["novelty"], rtol=1e-9, atol=1e-6)
