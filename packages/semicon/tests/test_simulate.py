"""The wafer defect-map simulator: determinism, the disk, each pattern's geometry, defect counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convsuite.core_ops.io import InputError
from convsuite.semicon.data import (
    PATTERNS,
    SimulationOptions,
    WaferMap,
    in_disk,
    iter_simulated,
    read_wafer_maps,
    simulate_wafer_map,
    simulate_wafer_maps,
    write_simulated,
)
from convsuite.semicon.data.simulate import _PATTERN_SAMPLERS, _sample_parts

FULL = SimulationOptions()
SMALL = SimulationOptions(grid=256, defects_scale=0.05)
SEEDS = range(6)


def _pattern_points(pattern: str, seed: int) -> np.ndarray:
    """The pattern's own defects, (N, 2) (u, v) in wafer radii, without the background."""
    return _sample_parts(np.random.default_rng(seed), pattern, FULL)[1]


def _radii(points: np.ndarray) -> np.ndarray:
    return np.hypot(points[:, 0], points[:, 1])


@pytest.fixture(scope="module")
def full_maps() -> dict[str, list[WaferMap]]:
    return {
        pattern: [simulate_wafer_map(np.random.default_rng(s), pattern, FULL) for s in SEEDS]
        for pattern in PATTERNS
    }


def test_samplers_cover_the_vocabulary() -> None:
    assert tuple(_PATTERN_SAMPLERS) == PATTERNS


def test_same_seed_same_maps_and_map_i_independent_of_n() -> None:
    first = simulate_wafer_maps(12, seed=7, options=SMALL)
    again = simulate_wafer_maps(12, seed=7, options=SMALL)
    assert first == again
    assert simulate_wafer_maps(3, seed=7, options=SMALL) == first[:3]
    assert list(iter_simulated(4, 7, SMALL, start=8)) == first[8:]
    assert simulate_wafer_maps(12, seed=8, options=SMALL) != first
    child = np.random.SeedSequence(7).spawn(12)[5]
    wafer = simulate_wafer_map(np.random.default_rng(child), first[5].label, SMALL, first[5].name)
    assert wafer == first[5]


def test_balanced_and_prevalence_weighted_series() -> None:
    maps = simulate_wafer_maps(18, seed=1, options=SMALL)
    assert [m.label for m in maps] == list(PATTERNS) * 2
    assert maps[14].name == "wafer_00014_scratch"
    assert all(m.grid_shape == (256, 256) and m.pitch_mm == 300 / 256 for m in maps)
    stream = simulate_wafer_maps(60, seed=1, options=SMALL, balanced=False)
    labels = [m.label for m in stream]
    assert 0.65 < labels.count("none") / 60 < 0.98 and len(set(labels)) > 1
    pair = simulate_wafer_maps(10, 2, SMALL, patterns=("Scratch", "loc"), balanced=False)
    assert {m.label for m in pair} <= {"scratch", "loc"}
    with pytest.raises(InputError, match="unknown label 'blob'"):
        simulate_wafer_map(np.random.default_rng(0), "blob", SMALL)


def test_every_defect_lies_in_the_disk(full_maps: dict[str, list[WaferMap]]) -> None:
    for pattern, maps in full_maps.items():
        for wafer in maps:
            rows, cols = wafer.coords.T
            assert in_disk(rows, cols, wafer.grid_shape, wafer.radius_cells).all(), pattern
            assert wafer.label == pattern and wafer.grid_shape == (4096, 4096)
        small = simulate_wafer_map(np.random.default_rng(0), pattern, SMALL)
        assert not (small.to_dense() & ~small.wafer_mask()).any(), pattern


def test_defect_counts_at_full_resolution(full_maps: dict[str, list[WaferMap]]) -> None:
    counts = {pattern: [m.n_defects for m in maps] for pattern, maps in full_maps.items()}
    for pattern in ("center", "donut", "edge-ring", "edge-loc", "loc", "random"):
        assert 1500 <= min(counts[pattern]) and max(counts[pattern]) <= 25000, pattern
    assert 200 <= min(counts["none"]) and max(counts["none"]) <= 2500
    assert 500 <= min(counts["scratch"]) and max(counts["scratch"]) <= 10000
    assert 25000 <= min(counts["near-full"]) and max(counts["near-full"]) <= 110000
    for maps in full_maps.values():
        for wafer in maps[:2]:
            assert wafer.binned(64).sum() == wafer.n_defects


def test_whole_maps_show_their_pattern(full_maps: dict[str, list[WaferMap]]) -> None:
    for wafer in full_maps["center"]:
        assert np.mean(wafer.radii() < 0.3) > 0.5
    for wafer in full_maps["edge-ring"]:
        assert np.mean(wafer.radii() > 0.8) > 0.7
    for wafer in full_maps["donut"]:
        assert np.mean((wafer.radii() > 0.25) & (wafer.radii() < 0.8)) > 0.6
    for wafer in full_maps["near-full"]:  # defects in most of the wafer's 64 x 64 bins
        wafer_bins = wafer.binned(64, mode="density") > 0
        disk = WaferMap.from_coordinates(np.zeros((0, 2)), (64, 64), 1.0, 64.0).wafer_mask()
        assert wafer_bins[disk].mean() > 0.8


@pytest.mark.parametrize("seed", SEEDS)
def test_radial_patterns(seed: int) -> None:
    assert np.mean(_radii(_pattern_points("center", seed)) < 0.3) > 0.85
    donut = _radii(_pattern_points("donut", seed))
    assert np.mean((donut > 0.25) & (donut < 0.75)) > 0.9 and np.mean(donut < 0.2) < 0.01
    assert np.mean(_radii(_pattern_points("edge-ring", seed)) > 0.85) > 0.97
    uniform = _radii(_pattern_points("random", seed))
    assert abs(np.mean(uniform < 0.5) - 0.25) < 0.03  # a quarter of the area within R/2


@pytest.mark.parametrize("seed", SEEDS)
def test_edge_ring_is_a_full_circle_and_edge_loc_an_arc(seed: int) -> None:
    for pattern, low, high in (("edge-ring", 36, 36), ("edge-loc", 2, 11)):
        points = _pattern_points(pattern, seed)
        angles = np.arctan2(points[:, 1], points[:, 0])
        sectors = np.bincount(((angles + np.pi) // (np.pi / 18)).astype(int) % 36, minlength=36)
        occupied = int(np.sum(sectors > 0.01 * len(points)))  # 10-degree sectors
        assert low <= occupied <= high, (pattern, occupied)
        assert np.mean(_radii(points) > 0.8) > 0.95


@pytest.mark.parametrize("seed", SEEDS)
def test_loc_is_a_compact_blob_off_centre(seed: int) -> None:
    points = _pattern_points("loc", seed)
    centre = np.median(points, axis=0)
    assert 0.25 < np.hypot(*centre) < 0.85
    assert np.mean(np.hypot(*(points - centre).T) < 0.3) > 0.95


@pytest.mark.parametrize("seed", SEEDS)
def test_scratch_lies_along_a_thin_long_curve(seed: int) -> None:
    points = _pattern_points("scratch", seed)
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    along, across = (centred @ axes.T).T
    cells = FULL.grid / 2  # cells per wafer radius
    assert np.ptp(along) * cells > 300  # longer than 22 mm
    # Across the curve: residual of a cubic in the principal frame, a couple of cells at most.
    fit = np.polynomial.Polynomial.fit(along, across, 3)
    residual = (across - fit(along)) * cells
    assert residual.std() < 2.5
    assert np.ptp(across) < 0.25 * np.ptp(along)  # thin: bowed by at most 15% of its chord


def test_scratches_have_gaps() -> None:
    broken = 0
    for seed in range(10):
        points = _pattern_points("scratch", seed)
        centred = points - points.mean(axis=0)
        along = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
        per_mm = np.bincount(((along - along.min()) * 150).astype(int))  # 1 mm bins
        broken += bool(np.any(per_mm[1:-1] == 0))
    assert broken >= 3


def test_write_simulated(tmp_path: Path) -> None:
    maps = simulate_wafer_maps(3, seed=4, options=SMALL)
    paths = write_simulated(tmp_path / "sim", maps)
    assert [p.name for p in paths] == [f"{m.name}.csv" for m in maps]
    assert list(read_wafer_maps([tmp_path / "sim"])) == maps


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="grid"):
        SimulationOptions(grid=4)
    with pytest.raises(ValueError, match=">= 0"):
        SimulationOptions(defects_scale=-1)


def test_novel_patterns_are_unlabelled_unlike_the_known_ones_and_seeded(tmp_path: Path) -> None:
    from convsuite.core_ops.cli import run
    from convsuite.semicon.cli import app
    from convsuite.semicon.data import read_wafer_maps
    from convsuite.semicon.data.novel import NOVEL_PATTERNS, simulate_novel_maps

    options = SimulationOptions(grid=512, defects_scale=0.2)
    maps = simulate_novel_maps(6, 3, options)
    assert [m.name.split("_")[-1] for m in maps] == list(NOVEL_PATTERNS) * 2
    assert all(m.label is None and m.n_defects > 50 for m in maps)
    assert maps[4] == simulate_novel_maps(5, 3, options)[4]  # map i does not depend on n
    # a reticle repeat is a lattice of tight clusters: many defects share a 1/64-grid window
    windows = {tuple(c) for c in maps[1].coords // 8}
    assert len(windows) < 0.6 * maps[1].n_defects
    with pytest.raises(SystemExit) as stop:
        run(app, ["simulate", "--novel", "--n", "3", "--grid", "256", "--out", str(tmp_path)])
    assert stop.value.code == 0
    written = list(read_wafer_maps([tmp_path]))
    assert len(written) == 3 and all(m.label is None for m in written)
