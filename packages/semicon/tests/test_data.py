"""Wafer maps and their files: WaferMap geometry, defect-list CSV/.npz, WM-811K pickles, bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from convsuite.core_ops.io import InputError
from convsuite.semicon.data import (
    PATTERNS,
    SimulationOptions,
    WaferMap,
    in_disk,
    mm_to_grid,
    normalize_label,
    read_wafer_map,
    read_wafer_maps,
    read_wm811k,
    simulate_wafer_map,
    write_wafer_csv,
    write_wafer_npz,
)
from convsuite.semicon.data.readers import _load_legacy_pickle

SMALL = SimulationOptions(grid=512, defects_scale=0.2)


@pytest.fixture(scope="module")
def scratch_map() -> WaferMap:
    return simulate_wafer_map(
        np.random.default_rng(0), "scratch", SMALL, name="wafer_00005_scratch"
    )


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- WaferMap ------------------------------------------------------------------------------------


def test_from_coordinates_merges_sorts_and_freezes() -> None:
    wafer = WaferMap.from_coordinates(
        [[5, 6], [3, 4], [5, 6], [3, 4]], (10, 10), 1.0, 10.0, label="Edge-Ring", name="w"
    )
    np.testing.assert_array_equal(wafer.coords, [[3, 4], [5, 6]])
    assert wafer.coords.dtype == np.int64 and not wafer.coords.flags.writeable
    assert wafer.n_defects == 2 and wafer.label == "edge-ring" and wafer.radius_cells == 5.0
    assert wafer == WaferMap.from_coordinates(
        [[3, 4], [5, 6]], (10, 10), 1.0, 10.0, "edge-ring", "w"
    )
    empty = WaferMap.from_coordinates(np.zeros((0, 2)), (10, 10), 1.0, 10.0)
    assert empty.n_defects == 0 and empty.to_dense().sum() == 0


def test_dense_mask_and_binned(scratch_map: WaferMap) -> None:
    dense = scratch_map.to_dense()
    mask = scratch_map.wafer_mask()
    assert dense.shape == mask.shape == (512, 512) and dense.dtype == mask.dtype == np.bool_
    assert dense.sum() == scratch_map.n_defects and not (dense & ~mask).any()
    # Cells touching the disk: a little more than its area, less than the area of a disk one
    # cell-diagonal wider.
    assert np.pi * 256**2 < mask.sum() < np.pi * (256 + 1.5) ** 2
    for size in (64, 100):
        counts = scratch_map.binned(size)
        assert counts.shape == (size, size) and counts.dtype == np.float32
        assert counts.sum() == scratch_map.n_defects
    density = scratch_map.binned(64, mode="density")
    assert density.min() >= 0 and density.max() <= 1
    np.testing.assert_allclose(density, np.minimum(scratch_map.binned(64) / 64, 1))


def test_binned_keeps_non_square_wafers_round() -> None:
    wafer = WaferMap.from_coordinates([[0, 5], [7, 0], [7, 9]], (8, 10), 30.0, 300.0)
    image = wafer.binned(10)
    assert image.sum() == 3
    assert image[1, 5] == 1 and image[8, 0] == 1 and image[8, 9] == 1  # rows shifted by one


def test_every_point_of_the_disk_falls_in_a_wafer_cell() -> None:
    rng = np.random.default_rng(1)
    for diameter, pitch in [(300.0, 300 / 4096), (200.0, 0.7), (150.0, 0.9), (100.0, 0.3)]:
        side = round(diameter / pitch)
        angle = rng.uniform(0, 2 * np.pi, 20000)
        radius = np.sqrt(rng.random(20000)) * diameter / 2
        radius[:2000] = diameter / 2  # on the rim exactly
        xy = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
        coords = mm_to_grid(xy, (side, side), pitch)
        assert coords.min() >= 0 and coords.max() < side
        assert in_disk(coords[:, 0], coords[:, 1], (side, side), diameter / (2 * pitch)).all()


def test_normalize_label_accepts_wm811k_spellings() -> None:
    assert [normalize_label(name) for name in PATTERNS] == list(PATTERNS)
    assert normalize_label("Near-full") == "near-full"
    assert normalize_label("EDGE_LOC") == "edge-loc"
    assert normalize_label(None) is None
    with pytest.raises(InputError, match="unknown label 'blob'"):
        normalize_label("blob", "x.csv")


@pytest.mark.parametrize(
    ("coords", "problem"),
    [
        ([[1.0, np.nan]], "1 defects have NaN"),
        ([[1.5, 2.0]], "whole numbers"),
        ([[0, 0], [5, 5]], "1 of 2 defects lie outside the wafer (radius 5 mm"),
        ([[5, 12]], "outside the wafer"),
    ],
)
def test_from_coordinates_rejects_bad_cells(coords: list, problem: str) -> None:
    with pytest.raises(InputError) as error:
        WaferMap.from_coordinates(np.array(coords), (10, 10), 1.0, 10.0, source="lot7.csv")
    assert str(error.value).startswith("lot7.csv: ") and problem in str(error.value)


# --- defect-list CSV and .npz --------------------------------------------------------------------


def test_csv_round_trip(tmp_path: Path, scratch_map: WaferMap) -> None:
    path = write_wafer_csv(tmp_path / f"{scratch_map.name}.csv", scratch_map)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[:4] == [
        "# diameter_mm: 300.0",
        f"# pitch_mm: {300 / 512!r}",
        "# label: scratch",
        "x,y",
    ]
    assert read_wafer_map(path) == scratch_map
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left


def test_csv_round_trip_of_a_full_resolution_map(tmp_path: Path) -> None:
    wafer = simulate_wafer_map(np.random.default_rng(3), "edge-ring", SimulationOptions(), "w")
    assert read_wafer_map(write_wafer_csv(tmp_path / "w.csv", wafer)) == wafer


def test_csv_from_another_tool_merges_duplicates(tmp_path: Path) -> None:
    path = _write_csv(
        tmp_path / "lot3_w07.csv",
        "# written by a defect-inspection tool\n# Diameter_mm: 200\n# pitch_mm : 0.5\n"
        "# label: Edge-Loc\n"
        "x, y, size_um\n0.1, 0.1, 3\n0.2, 0.3, 5\n-99.9, 0.0, 1\n0.0, 99.95, 2\n",
    )
    wafer = read_wafer_map(path)
    assert wafer.grid_shape == (400, 400) and wafer.pitch_mm == 0.5 and wafer.diameter_mm == 200
    assert wafer.label == "edge-loc" and wafer.name == "lot3_w07"
    # (0.1, 0.1) and (0.2, 0.3) share the cell right of and above the centre.
    np.testing.assert_array_equal(wafer.coords, [[0, 200], [199, 200], [200, 0]])


def test_csv_with_json_sidecar(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "w1.csv", "x,y\n10.0,-20.0\n-30.0,40.0\n")
    (tmp_path / "w1.json").write_text(
        json.dumps({"diameter_mm": 300, "pitch_mm": 0.1, "label": "loc", "tool": "K"}),
        encoding="utf-8",
    )
    wafer = read_wafer_map(path)
    assert wafer.grid_shape == (3000, 3000) and wafer.label == "loc"
    np.testing.assert_allclose(wafer.xy_mm(), [[-29.95, 39.95], [10.05, -20.05]])
    # The comment header takes precedence where the sidecar is silent, and must agree where not.
    _write_csv(path, "# pitch_mm: 0.2\nx,y\n10.0,-20.0\n")
    with pytest.raises(InputError, match="header says pitch_mm 0.2 but sidecar w1.json says 0.1"):
        read_wafer_map(path)


def test_npz_reader(tmp_path: Path, scratch_map: WaferMap) -> None:
    assert read_wafer_map(write_wafer_npz(tmp_path / f"{scratch_map.name}.npz", scratch_map)) == (
        scratch_map
    )
    path = tmp_path / "probe.npz"
    np.savez(
        path,
        x=np.array([1.2, 1.3, -50.0]),
        y=np.array([2.2, 2.4, 0.0]),
        diameter_mm=np.float64(300),
        pitch_mm=np.float64(1.0),
        label=np.str_("Center"),
    )
    wafer = read_wafer_map(path)
    assert wafer.label == "center" and wafer.name == "probe" and wafer.n_defects == 2
    np.testing.assert_array_equal(wafer.coords, [[147, 151], [150, 100]])
    np.savez(path, x=np.array([1.0]), y=np.array([2.0]), diameter_mm=np.float64(300))
    with pytest.raises(InputError, match="missing pitch_mm; found diameter_mm, x, y"):
        read_wafer_map(path)


def test_npz_reader_reads_only_its_arrays_and_no_pickles(tmp_path: Path) -> None:
    path = tmp_path / "probe.npz"
    arrays = {"y": np.array([2.0]), "diameter_mm": np.float64(300), "pitch_mm": np.float64(1.0)}
    # An unused array, even a pickled one, is never decoded.
    np.savez(path, x=np.array([1.0]), junk=np.array([{"a": 1}], dtype=object), **arrays)
    assert read_wafer_map(path).n_defects == 1
    np.savez(path, x=np.array([1.0], dtype=object), **arrays)
    with pytest.raises(InputError, match="array x holds Python objects"):
        read_wafer_map(path)
    np.savez(path, x=np.array([1.0]), **{**arrays, "pitch_mm": np.ones(3)})
    with pytest.raises(InputError, match="pitch_mm must be a scalar, got 3 values"):
        read_wafer_map(path)


def test_read_wafer_maps_expands_folders(tmp_path: Path, scratch_map: WaferMap) -> None:
    write_wafer_csv(tmp_path / "b.csv", scratch_map)
    write_wafer_npz(tmp_path / "a.npz", scratch_map)
    (tmp_path / "b.json").write_text("{}", encoding="utf-8")
    names = [wafer.name for wafer in read_wafer_maps([tmp_path, tmp_path / "b.csv"])]
    assert names == ["a", "b", "b"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty wafer map"),
        ("# diameter_mm: 300\n# pitch_mm: 0.1\nx,y\n", "empty wafer map"),
        ("# diameter_mm: 300\n# pitch_mm: 0.1\nx,y\n1.0,nan\n2.0,3.0\n", "1 defects have NaN"),
        (
            "# diameter_mm: 300\n# pitch_mm: 0.1\nX,Z\n1.0,2.0\n",
            "expected columns x, y (mm); found X, Z",
        ),
        (
            "# diameter_mm: 300\n# pitch_mm: 0.1\nx,y\n1,2\n150,20\n0,-151\n",
            "2 of 3 defects lie outside the wafer (radius 150 mm",
        ),
        ("# diameter_mm: 300\n# pitch_mm: 0.1\n# label: blob\nx,y\n1,2\n", "unknown label 'blob'"),
        ("# diameter_mm: 300\nx,y\n1,2\n", "no pitch_mm"),
        ("# diameter_mm: 300\n# pitch_mm: 0.1\nx,y\n1,abc\n", "non-numeric values (first 'abc'"),
        ("# diameter_mm: 300\n# pitch_mm: 300000\nx,y\n1,2\n", "grid side"),
        ("# diameter_mm: 300\n# pitch_mm: 1e-320\nx,y\n1,2\n", "= inf is outside"),
    ],
)
def test_bad_csv_names_file_and_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = _write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(InputError) as error:
        read_wafer_map(path)
    message = str(error.value)
    assert message.startswith(f"{path}: ") and problem in message and "\n" not in message


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file does not exist"):
        read_wafer_map(tmp_path / "missing.csv")
    with pytest.raises(InputError, match=r"unknown format '\.txt'; expected \.csv or \.npz"):
        read_wafer_map(_write_csv(tmp_path / "w.txt", "x,y\n"))
    with pytest.raises(InputError, match="is not a readable .npz file"):
        read_wafer_map(_write_csv(tmp_path / "w.npz", "not a zip"))
    np.savez(tmp_path / "e.npz", x=np.zeros(0), y=np.zeros(0), diameter_mm=300.0, pitch_mm=0.1)
    with pytest.raises(InputError, match="empty wafer map"):
        read_wafer_map(tmp_path / "e.npz")


def test_writer_refuses_maps_it_cannot_store(tmp_path: Path) -> None:
    wafer = WaferMap.from_coordinates([[1, 1]], (8, 8), 30.0, 300.0)  # 300 / 30 = 10 cells
    with pytest.raises(ValueError, match="longer side must be round"):
        write_wafer_csv(tmp_path / "w.csv", wafer)
    assert not list(tmp_path.iterdir())


def test_die_grids_that_are_not_square_round_trip(tmp_path: Path) -> None:
    """A WM-811K die map's H x W grid is kept (grid_rows, grid_cols), its dies exactly."""
    wafer = WaferMap.from_coordinates([[0, 5], [4, 0], [7, 9]], (8, 10), 30.0, 300.0, "loc", "w")
    for write, suffix in ((write_wafer_csv, ".csv"), (write_wafer_npz, ".npz")):
        assert read_wafer_map(write(tmp_path / f"w{suffix}", wafer)) == wafer
    (tmp_path / "x.csv").write_text(
        "# diameter_mm: 300\n# pitch_mm: 30\n# grid_rows: 8\nx,y\n0,0\n"
    )
    with pytest.raises(InputError, match="grid_rows and grid_cols go together"):
        read_wafer_map(tmp_path / "x.csv")
    (tmp_path / "y.csv").write_text(
        "# diameter_mm: 300\n# pitch_mm: 30\n# grid_rows: 8\n# grid_cols: 9\nx,y\n0,0\n"
    )
    with pytest.raises(InputError, match=r"grid 8 x 9 does not fit diameter / pitch = 10"):
        read_wafer_map(tmp_path / "y.csv")


# --- WM-811K -------------------------------------------------------------------------------------


def _die_map(height: int, width: int, fails: list[tuple[int, int]]) -> np.ndarray:
    rows = (np.arange(height)[:, None] + 0.5 - height / 2) / (height / 2)
    cols = (np.arange(width)[None, :] + 0.5 - width / 2) / (width / 2)
    die_map = np.where(rows**2 + cols**2 <= 1.0, 1, 0).astype(np.uint8)
    for row, col in fails:
        assert die_map[row, col] == 1
        die_map[row, col] = 2
    return die_map


def _wm811k_frame() -> pd.DataFrame:
    """Five rows shaped like LSWMD.pkl: nested labels, an unlabelled row, non-square maps."""
    return pd.DataFrame(
        {
            "waferMap": [
                _die_map(26, 26, [(13, 13), (12, 13)]),
                _die_map(30, 34, [(15, 2)]),
                _die_map(26, 26, []),
                _die_map(45, 48, [(22, 24), (23, 24), (2, 24)]),
                _die_map(26, 26, [(0, 13)]),
            ],
            "dieSize": [533.0, 600.0, 533.0, 1000.0, 533.0],
            "lotName": ["lot1", "lot1", "lot2", "lot3", "lot3"],
            "waferIndex": [1.0, 2.0, 1.0, 25.0, 3.0],
            "trianTestLabel": [[["Training"]], [["Test"]], np.zeros((0, 0)), [["Training"]], []],
            "failureType": [
                np.array([["Center"]], dtype=object),
                np.array([["Edge-Loc"]], dtype=object),
                np.zeros((0, 0)),
                [["none"]],
                np.zeros((1, 0)),
            ],
        },
        index=[0, 1, 2, 3, 811456],
    )


def test_wm811k_reader(tmp_path: Path) -> None:
    path = tmp_path / "LSWMD.pkl"
    frame = _wm811k_frame()
    frame.to_pickle(path)
    maps = list(read_wm811k(path))
    assert [m.label for m in maps] == ["center", "edge-loc", "none"]
    assert [m.name for m in maps] == ["lot1_w01", "lot1_w02", "lot3_w25"]
    assert [m.grid_shape for m in maps] == [(26, 26), (30, 34), (45, 48)]
    assert maps[1].pitch_mm == 300 / 34 and maps[2].diameter_mm == 300
    np.testing.assert_array_equal(maps[0].coords, [[12, 13], [13, 13]])
    for wafer, row in zip(maps, [0, 1, 3], strict=True):
        np.testing.assert_array_equal(wafer.coords, np.argwhere(frame.waferMap[row] == 2))
    everything = list(read_wm811k(path, labelled_only=False))
    assert [m.label for m in everything] == ["center", "edge-loc", None, "none", None]
    assert everything[2].n_defects == 0 and everything[4].name == "lot3_w03"
    assert [m.name for m in read_wm811k(path, limit=2)] == ["lot1_w01", "lot1_w02"]


def test_wm811k_old_pandas_module_names(tmp_path: Path) -> None:
    """A pickle naming ``pandas.indexes`` (pandas < 0.20, as LSWMD.pkl) still loads."""
    frame = _wm811k_frame().drop(columns=["lotName", "waferIndex"])
    data = pickle.dumps(frame, protocol=2)  # module names as plain text lines
    assert b"pandas.core.indexes" in data
    path = tmp_path / "old.pkl"
    path.write_bytes(data.replace(b"pandas.core.indexes", b"pandas.indexes"))
    assert isinstance(_load_legacy_pickle(path), pd.DataFrame)
    assert [m.name for m in read_wm811k(path)] == ["wm811k_0", "wm811k_1", "wm811k_3"]


def test_wm811k_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "bad.pkl"
    pd.DataFrame({"waferMap": [np.ones((3, 3))], "label": ["x"]}).to_pickle(path)
    with pytest.raises(InputError, match="missing failureType; found waferMap, label"):
        next(read_wm811k(path))
    pd.DataFrame({"waferMap": [np.ones((3, 3))], "failureType": [[["Blob"]]]}).to_pickle(path)
    with pytest.raises(InputError, match=r"bad.pkl row 0: unknown label 'Blob'"):
        next(read_wm811k(path))
    pd.DataFrame({"waferMap": [np.full((3, 3), 3)], "failureType": [[["Loc"]]]}).to_pickle(path)
    with pytest.raises(InputError, match="values must be 0"):
        next(read_wm811k(path))
    with open(path, "wb") as handle:
        pickle.dump([1, 2, 3], handle)
    with pytest.raises(InputError, match="expected a pickled pandas DataFrame, got list"):
        next(read_wm811k(path))
    path.write_bytes(b"garbage")
    with pytest.raises(InputError, match="is not a readable pandas pickle"):
        next(read_wm811k(path))
