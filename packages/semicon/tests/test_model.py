"""SparseWaferNet, its input collation and stem, and the binned dense baseline."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_learns

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import create_model, list_presets, model_config
from convsuite.core_ops.layers import SparseConv2d, SparseTensor
from convsuite.semicon.data import SimulationOptions, WaferMap, simulate_wafer_maps
from convsuite.semicon.dense_baseline import DenseWaferConfig, DenseWaferNet, batch_binned
from convsuite.semicon.dense_baseline import _symmetry as dense_symmetry
from convsuite.semicon.model import (
    SparseWaferNet,
    WaferNetConfig,
    WindowStem,
    batch_wafer_maps,
    wafer_coords,
)

GRID = 256
OPTIONS = SimulationOptions(grid=GRID, defects_scale=0.05)
EASY = ("center", "donut", "edge-ring", "random")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def maps() -> list[WaferMap]:
    return simulate_wafer_maps(8, seed=3, options=OPTIONS, patterns=EASY)


def _tiny(classes=EASY) -> SparseWaferNet:
    torch.manual_seed(0)
    return SparseWaferNet(model_config("wafer_sparse", "tiny", classes=classes))


def test_shapes_and_final_grid(maps: list[WaferMap]) -> None:
    net = _tiny().eval()
    x = batch_wafer_maps(maps, GRID)
    assert x.coords.shape == (sum(w.n_defects for w in maps), 3)
    assert torch.equal(x.feats, torch.ones(len(x.coords), 1))
    with torch.no_grad():
        deep = net.forward_features(x)
        features, logits = net.features(x), net(x)
    assert deep.spatial_shape == (4, 4) and deep.feats.shape[1] == 24
    assert features.shape == (8, 16) and (features >= 0).all()
    assert logits.shape == (8, len(EASY)) and torch.isfinite(logits).all()
    torch.testing.assert_close(net.forward_head(features), logits)
    # tiny pools its last two stages (16 and 24 channels): [avg, max] of each feed the projection
    with torch.no_grad():
        pooled = net.pooled_features(x)
    assert pooled.shape == (8, 2 * (16 + 24))
    torch.testing.assert_close(pooled[:, -48:-24], deep.to_dense().sum((2, 3)) / deep_counts(deep))


def deep_counts(deep) -> torch.Tensor:
    """Active sites per map of a sparse tensor, (B, 1)."""
    return torch.bincount(deep.coords[:, 0], minlength=deep.batch_size)[:, None].float()


def test_wrong_grid_is_refused(maps: list[WaferMap]) -> None:
    net = _tiny()
    with pytest.raises(ValueError, match="batch_wafer_maps"):
        net(batch_wafer_maps(maps, 512))


@pytest.mark.parametrize("head", ["pool", "flatten"])
def test_features_do_not_depend_on_site_order_or_batch_neighbours(maps, head) -> None:
    torch.manual_seed(0)
    net = SparseWaferNet(model_config("wafer_sparse", "tiny", classes=EASY, head=head)).eval()
    x = batch_wafer_maps(maps, GRID)
    order = torch.randperm(len(x.coords), generator=torch.Generator().manual_seed(1))
    shuffled = SparseTensor(x.coords[order], x.feats[order], x.spatial_shape, x.batch_size)
    with torch.no_grad():
        reference = net.features(x)
        torch.testing.assert_close(net.features(shuffled), reference, rtol=1e-5, atol=1e-5)
        alone = net.features(batch_wafer_maps(maps[3:4], GRID))
    torch.testing.assert_close(alone[0], reference[3], rtol=1e-5, atol=1e-5)


def test_window_stem_matches_core_ops_strided_conv(maps: list[WaferMap]) -> None:
    torch.manual_seed(0)
    stem = WindowStem(6, 8, bias=True)
    x = batch_wafer_maps(maps[:3], GRID)
    x = x.replace_feats(torch.rand(len(x.coords), 1) + 0.5)  # any one-channel features
    fast, slow = stem(x), stem.reference(x)
    assert torch.equal(fast.coords, slow.coords)
    assert fast.spatial_shape == slow.spatial_shape == (32, 32)
    torch.testing.assert_close(fast.feats, slow.feats, rtol=1e-5, atol=1e-5)
    (grad_fast,) = torch.autograd.grad(fast.feats.square().sum(), stem.weight)
    (grad_slow,) = torch.autograd.grad(slow.feats.square().sum(), stem.weight)
    torch.testing.assert_close(grad_fast, grad_slow, rtol=1e-4, atol=1e-4)
    # Its weights load into the reference layer: same parameters, same layout.
    plain = SparseConv2d(1, 6, 8, 8)
    plain.load_state_dict(stem.state_dict())


def test_empty_map_and_other_grids() -> None:
    full = simulate_wafer_maps(1, seed=5, options=OPTIONS, patterns=("center",))[0]
    empty = WaferMap.from_coordinates(np.zeros((0, 2)), (GRID, GRID), full.pitch_mm, 300.0)
    x = batch_wafer_maps([full, empty, full], GRID)
    assert x.batch_size == 3 and int((x.coords[:, 0] == 1).sum()) == 0
    net = _tiny().eval()
    with torch.no_grad():
        features = net.features(x)
    torch.testing.assert_close(features[0], features[2])
    # A map on a finer grid is rescaled: the same cells land together at the network's grid.
    fine = WaferMap(full.coords * 2 + 1, (2 * GRID, 2 * GRID), full.pitch_mm / 2, 300.0)
    np.testing.assert_array_equal(wafer_coords(fine, GRID), full.coords)


def test_symmetries(maps: list[WaferMap]) -> None:
    wafer = maps[0]
    seen = set()
    for t in range(8):
        moved = wafer_coords(wafer, GRID, t)
        assert len(moved) == wafer.n_defects
        seen.add(moved.tobytes())
        # The dense baseline's augmentation is the same symmetry of the binned image.
        moved_map = WaferMap(moved, wafer.grid_shape, wafer.pitch_mm, wafer.diameter_mm)
        image = torch.from_numpy(wafer.binned(32))[None]
        expected = torch.from_numpy(moved_map.binned(32))[None]
        torch.testing.assert_close(dense_symmetry(image, t), expected)
    assert len(seen) == 8  # an asymmetric map: 8 different images
    once = WaferMap(wafer_coords(wafer, GRID, 1), wafer.grid_shape, wafer.pitch_mm, 300.0)
    back = WaferMap(wafer_coords(once, GRID, 3), wafer.grid_shape, wafer.pitch_mm, 300.0)
    np.testing.assert_array_equal(back.coords, wafer.coords)


def test_registry_builds_both_networks_from_their_presets() -> None:
    assert list_presets("wafer_sparse") == ["base", "small", "tiny"]
    assert list_presets("wafer_dense") == ["small", "tiny"]
    sparse = create_model("wafer_sparse", preset="tiny")
    assert isinstance(sparse, SparseWaferNet) and sparse.config.grid == 256
    assert create_model("wafer_sparse").config == model_config("wafer_sparse", "small")
    dense = create_model("wafer_dense", preset="tiny", classes=EASY)
    assert isinstance(dense, DenseWaferNet) and dense.config.bins == 32
    assert dense.head.out_features == len(EASY)
    with pytest.raises(InputError, match="presets: base, small, tiny"):
        create_model("wafer_sparse", preset="huge")


def test_create_model_finds_the_networks_through_entry_points() -> None:
    """A fresh interpreter that never imported convsuite.semicon builds both networks."""
    code = (
        "import sys; from convsuite.core_ops.hub import create_model; "
        "s = create_model('wafer_sparse', preset='tiny'); d = create_model('wafer_dense', "
        "preset='tiny'); print(type(s).__name__, type(d).__name__, s.config.grid, d.config.bins)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["SparseWaferNet", "DenseWaferNet", "256", "32"]


def test_config_round_trip_and_checks() -> None:
    config = model_config("wafer_sparse", "small")
    assert WaferNetConfig.from_dict(config.to_dict()) == config
    assert config.final_grid == 4 and model_config("wafer_sparse", "base").final_grid == 4
    dense = model_config("wafer_dense", "tiny")
    assert DenseWaferConfig.from_dict(dense.to_dict()) == dense
    with pytest.raises(InputError, match="card.json: unknown WaferNetConfig keys 'depth'"):
        WaferNetConfig.from_dict({**config.to_dict(), "depth": 3}, source="card.json")
    with pytest.raises(InputError, match="head must be one of 'pool', 'flatten'"):
        WaferNetConfig.from_dict({"head": "attention"})
    with pytest.raises(InputError, match="divisible"):
        config.replace(grid=100)
    with pytest.raises(ValueError, match="divisible"):
        WaferNetConfig(grid=100)
    with pytest.raises(ValueError, match="one entry per stage"):
        WaferNetConfig(blocks=(1, 1))
    with pytest.raises(ValueError, match="only the first stage"):
        WaferNetConfig(strides=(4, 1, 4, 4, 4))
    with pytest.raises(ValueError, match="pooled_stages"):
        WaferNetConfig(pooled_stages=6)


def _training_batches(classes, n, seed, to_input):
    maps = simulate_wafer_maps(n, seed=seed, options=OPTIONS, patterns=classes)
    targets = torch.tensor([classes.index(w.label) for w in maps])
    return [(to_input(maps[i : i + 16]), targets[i : i + 16]) for i in range(0, n, 16)]


def _accuracy(model, batches) -> float:
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x).argmax(1) == y).sum()) for x, y in batches)
    return hits / sum(len(y) for _, y in batches)


def test_tiny_sparse_net_learns() -> None:
    net = _tiny()
    train = _training_batches(EASY, 64, 11, lambda m: batch_wafer_maps(m, GRID))
    held_out = _training_batches(EASY, 32, 12, lambda m: batch_wafer_maps(m, GRID))
    assert_learns(net, train, F.cross_entropy, epochs=12, lr=5e-3, min_drop=0.5)
    assert _accuracy(net, held_out) >= 0.8  # chance: 0.25


def test_dense_baseline_learns() -> None:
    torch.manual_seed(0)
    config = model_config("wafer_dense", "tiny", classes=EASY)
    net = DenseWaferNet(config)
    train = _training_batches(EASY, 64, 11, lambda m: batch_binned(m, config.bins))
    held_out = _training_batches(EASY, 32, 12, lambda m: batch_binned(m, config.bins))
    x = train[0][0]
    assert x.shape == (16, 1, 32, 32) and x.dtype == torch.float32
    assert net.features(x).shape == (16, config.feature_dim)
    assert_learns(net, train, F.cross_entropy, epochs=12, lr=5e-3, min_drop=0.5)
    assert _accuracy(net, held_out) >= 0.8
    with pytest.raises(ValueError, match="batch_binned"):
        net(torch.zeros(2, 1, 64, 64))
    assert config.replace(bins=64).bins == 64
