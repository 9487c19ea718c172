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
from convsuite.semicon.data import PATTERNS, SimulationOptions, WaferMap, simulate_wafer_maps
from convsuite.semicon.dense_baseline import DenseWaferConfig, DenseWaferNet, batch_binned
from convsuite.semicon.dense_baseline import _symmetry as dense_symmetry
from convsuite.semicon.model import (
    ClumpStatistics,
    ShapeProfile,
    SparseWaferNet,
    WaferNetConfig,
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


def _window_stem(
    x: SparseTensor, weight: torch.Tensor, stride: int, bias: torch.Tensor | None = None
) -> SparseTensor:
    """The input layer semicon had before core-ops computed it (WindowStem): one
    ``torch.unique`` over the window keys and one ``index_add`` of the tap weights."""
    shift, mask = stride.bit_length() - 1, stride - 1
    out_h, out_w = x.spatial_shape[0] // stride, x.spatial_shape[1] // stride
    batch, rows, cols = x.coords.unbind(1)
    keys = (batch * out_h + (rows >> shift)) * out_w + (cols >> shift)
    taps = ((rows & mask) << shift) | (cols & mask)
    unique_keys, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    values = weight[:, 0, :].index_select(0, taps) * x.feats
    out = values.new_zeros(unique_keys.numel(), weight.shape[2]).index_add(0, inverse, values)
    if bias is not None:
        out = out + bias
    cells = torch.stack(
        [unique_keys // (out_h * out_w), (unique_keys // out_w) % out_h, unique_keys % out_w], 1
    )
    return SparseTensor(cells, out, (out_h, out_w), x.batch_size)


def test_input_layer_is_core_ops_k_equals_s_conv_with_window_stem_outputs(
    maps: list[WaferMap],
) -> None:
    """The ``small`` input layer is core-ops' strided conv; it gives WindowStem's outputs exactly
    (so weights trained with WindowStem load and behave unchanged)."""
    net = create_model("wafer_sparse", preset="small", classes=PATTERNS)
    entry = net.stages[0][0][0]
    assert type(entry) is SparseConv2d and entry.stride == (16, 16)
    full = simulate_wafer_maps(2, seed=3, options=SimulationOptions(grid=4096))
    x = batch_wafer_maps(full, 4096)
    with torch.no_grad():
        fast, old = entry(x), _window_stem(x, entry.weight, 16)
    assert torch.equal(fast.coords, old.coords) and torch.equal(fast.feats, old.feats)
    torch.manual_seed(0)
    layer = SparseConv2d(1, 6, 8, 8)
    x = batch_wafer_maps(maps[:3], GRID)
    x = x.replace_feats(torch.rand(len(x.coords), 1) + 0.5)  # any one-channel features
    fast, old = layer(x), _window_stem(x, layer.weight, 8, layer.bias)
    assert torch.equal(fast.coords, old.coords)
    torch.testing.assert_close(fast.feats, old.feats, rtol=0, atol=0)


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
    assert list_presets("wafer_sparse") == ["base", "small", "die", "tiny"]
    assert list_presets("wafer_dense") == ["small", "die", "tiny"]
    sparse = create_model("wafer_sparse", preset="tiny")
    assert isinstance(sparse, SparseWaferNet) and sparse.config.grid == 256
    assert create_model("wafer_sparse").config == model_config("wafer_sparse", "small")
    dense = create_model("wafer_dense", preset="tiny", classes=EASY)
    assert isinstance(dense, DenseWaferNet) and dense.config.bins == 32
    assert dense.head.out_features == len(EASY)
    with pytest.raises(InputError, match="presets: base, small, die, tiny"):
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


def test_shape_profile_says_where_the_defects_are(maps: list[WaferMap]) -> None:
    """Radial profile, angular unevenness, total density; invariant to the augmentations."""
    full = simulate_wafer_maps(3, 11, SimulationOptions(grid=1024), ("center", "edge-ring", "loc"))
    x = batch_wafer_maps(full, 1024)
    profile = ShapeProfile()(x)
    assert profile.shape == (3, ShapeProfile().out_features) == (3, 13)
    center, ring, loc = profile
    assert center[0] > center[7] + 2 and ring[7] > ring[0] + 2  # densest ring: inner vs rim
    assert loc[8:12].max() > ring[8:12].max() + 0.3  # a blob is uneven around, a ring is not
    for t in range(8):
        moved = ShapeProfile()(batch_wafer_maps(full, 1024, [t] * 3))
        torch.testing.assert_close(moved, profile, rtol=1e-5, atol=1e-5)
    # ring densities from the defects' radii by hand
    radii = full[0].radii()
    inner = np.sum(radii < 1 / 8) / (np.pi * (1024 / 2) ** 2 / 64)
    assert float(center[0]) == pytest.approx(np.log(inner + 1e-4), rel=1e-4)
    # in the network: features are the projection and the profile; the head reads both
    net = create_model("wafer_sparse", preset="tiny", classes=EASY, shape_profile=True).eval()
    x = batch_wafer_maps(maps[:2], GRID)
    with torch.no_grad():
        features = net.features(x)
    assert net.n_features == features.shape[1] == net.config.feature_dim + 13
    torch.testing.assert_close(features[:, -13:], ShapeProfile()(x))
    assert net.head.in_features == net.n_features


def test_die_maps_cover_the_grid_cells_under_each_die() -> None:
    dies = WaferMap.from_coordinates([[12, 12], [0, 12]], (25, 27), 300 / 27, 300.0)
    coords = wafer_coords(dies, 64)
    # 64 / 27 = 2.37 cells per die; the 25 rows sit one die down in the 27-die square: die
    # (12, 12) spans rows 13-14 x 2.37 = 30.8-33.2 -> 31, 32 and columns 28.4-30.8 -> 28-30
    expected = {(r, c) for r in (31, 32) for c in (28, 29, 30)}
    expected |= {(r, c) for r in (2, 3, 4) for c in (28, 29, 30)}  # die (0, 12): rows 2.4-4.7
    assert set(map(tuple, coords.tolist())) == expected
    net = create_model("wafer_sparse", preset="die", classes=EASY).eval()
    assert net.config.grid == 64 and net.config.shape_profile
    with torch.no_grad():
        assert net(batch_wafer_maps([dies], 64)).shape == (1, len(EASY))
    # the 4096 network refuses die maps in one line instead of making ~6,700 sites per die
    with pytest.raises(InputError, match="too coarse for a network on a 4096 grid"):
        wafer_coords(dies, 4096)


def test_clump_statistics_by_hand_and_in_the_novelty_features(maps: list[WaferMap]) -> None:
    full = simulate_wafer_maps(2, 12, SimulationOptions(grid=1024), ("random", "center"))
    x = batch_wafer_maps(full, 1024)
    stats = ClumpStatistics()(x)
    assert stats.shape == (2, 9)
    for i, wafer in enumerate(full):
        for j, cell in enumerate((4, 16, 64)):  # 1/256, 1/64, 1/16 of the 1024 grid
            keys = (wafer.coords[:, 0] // cell) * 1024 + wafer.coords[:, 1] // cell
            counts = np.unique(keys, return_counts=True)[1]
            expected = [np.log(len(counts) / wafer.n_defects), np.log1p(counts.max())]
            expected.append(np.log1p(counts.std()))
            np.testing.assert_allclose(stats[i, 3 * j : 3 * j + 3], expected, rtol=1e-5)
    assert stats[1, 3] < stats[0, 3] - 0.5  # a centre blob clumps, uniform defects do not
    for t in range(8):  # the windows tile the grid: the same under the augmentations
        moved = ClumpStatistics()(batch_wafer_maps(full, 1024, [t] * 2))
        torch.testing.assert_close(moved, stats)
    # the detector reads features + statistics; the head reads the features only
    net = create_model("wafer_sparse", preset="tiny", classes=EASY, clump_statistics=True).eval()
    x = batch_wafer_maps(maps[:2], GRID)
    with torch.no_grad():
        features = net.features(x)
        novelty = net.novelty_features(x, features)
    assert net.head.in_features == net.n_features == features.shape[1]
    assert novelty.shape[1] == net.n_novelty_features == net.n_features + 9
    torch.testing.assert_close(novelty[:, -9:], ClumpStatistics()(x))
