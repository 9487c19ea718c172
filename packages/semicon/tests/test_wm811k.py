"""WM-811K end to end: ``convert`` a pickle in LSWMD.pkl's structure (old pandas module paths,
see conftest.py), then train and evaluate on the converted die maps from the CLI."""

from __future__ import annotations

import csv
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from convsuite.core_ops.cli import run
from convsuite.semicon.cli import app
from convsuite.semicon.data import iter_wm811k, read_wafer_maps
from convsuite.semicon.data.readers import _load_legacy_pickle

PATTERNS = ("center", "edge-ring", "scratch", "none")


def invoke(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        run(app, [str(a) for a in args])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def test_legacy_pickle_needs_the_old_pandas_paths_and_loads(
    legacy_wm811k: Callable[..., Path],
) -> None:
    path = legacy_wm811k(6, 0, PATTERNS, unlabelled=2)
    data = path.read_bytes()
    for name in (b"pandas.indexes.base\n_new_Index", b"pandas.indexes.numeric\nInt64Index"):
        assert name in data
    with pytest.raises(ModuleNotFoundError, match="pandas.indexes"):
        pickle.loads(data)
    # pandas' own compat loader and our fallback (for a pandas that drops it) agree
    ours = _load_legacy_pickle(path)
    pd.testing.assert_frame_equal(
        pd.read_pickle(path).drop(columns="waferMap"), ours.drop(columns="waferMap")
    )
    assert ours.waferMap[0].dtype == np.uint8 and ours.waferMap[1].shape == (25, 27)
    records = list(iter_wm811k(path, labelled_only=False))
    assert [r.split for r in records] == ["Training"] * 4 + ["Test"] * 2 + [""] * 2
    assert [r.map.label for r in records[:4]] == list(PATTERNS)
    assert records[1].failure_type == "Edge-Ring" and records[6].map.label is None
    assert records[0].lot == "lot1" and records[3].wafer_index == 4
    assert records[0].die_size == float((ours.waferMap[0] > 0).sum())
    np.testing.assert_array_equal(records[1].map.coords, np.argwhere(ours.waferMap[1] == 2))


def test_convert_needs_trust_then_keeps_labels_lots_splits(
    legacy_wm811k: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = legacy_wm811k(12, 1, PATTERNS, unlabelled=2)
    out = tmp_path / "wm811k"
    code, _, err = invoke(capsys, "convert", path, "--out", out)
    assert code == 2 and "--trust-pickle" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    # every other command refuses the pickle and says how to convert it
    code, _, err = invoke(capsys, "classify", path, "--out", tmp_path / "r.csv")
    assert code == 2 and "wafer-monitor convert" in err
    code, _, err = invoke(capsys, "convert", path, "--out", out, "--trust-pickle")
    assert code == 0, err
    assert "wrote 12 maps" in err
    with open(out / "index.csv", newline="") as handle:
        index = list(csv.DictReader(handle))
    assert [row["trianTestLabel"] for row in index] == ["Training"] * 8 + ["Test"] * 4
    assert index[1]["failureType"] == "Edge-Ring" and index[1]["label"] == "edge-ring"
    assert (index[1]["lotName"], index[1]["waferIndex"]) == ("lot1", "2")
    assert (index[1]["grid_rows"], index[1]["grid_cols"]) == ("25", "27")
    records = list(iter_wm811k(path))
    for row, record in zip(index, records, strict=True):
        wafer = next(read_wafer_maps([out / row["file"]]))
        assert row["file"].startswith("train/" if record.split == "Training" else "test/")
        # the die grid, the fail dies and the label survive the conversion exactly
        assert wafer.grid_shape == record.map.grid_shape and wafer.label == record.map.label
        np.testing.assert_array_equal(wafer.coords, record.map.coords)
        assert int(row["fail_dies"]) == record.map.n_defects
    code, _, err = invoke(
        capsys, "convert", path, "--out", tmp_path / "all", "--trust-pickle", "--unlabelled"
    )
    assert code == 0 and len(list((tmp_path / "all" / "unlabelled").glob("*.npz"))) == 2


@pytest.mark.slow
def test_train_and_evaluate_on_converted_die_maps(
    legacy_wm811k: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Die-level maps pick the die-level network; the evaluation says so; it learns."""
    path = legacy_wm811k(96, 2, ("center", "edge-ring", "scratch", "none"))
    out = tmp_path / "wm811k"
    assert invoke(capsys, "convert", path, "--out", out, "--trust-pickle")[0] == 0
    model = tmp_path / "model"
    code, _, err = invoke(
        capsys, "train", out / "train", "--out", model, "--epochs", 8, "--accelerator", "cpu"
    )
    assert code == 0, err
    card = json.loads((model / "monitor.json").read_text())
    assert card["inputs"]["die_level"] and card["inputs"]["grid"] == 64
    figures = tmp_path / "eval"
    code, out_text, err = invoke(
        capsys, "evaluate", out / "test", "--model", model, "--figures", figures
    )
    assert code == 0, err
    assert "die-level" in out_text + err
    metrics = json.loads((figures / "metrics.json").read_text())
    assert metrics["die_level"] == 1.0 and metrics["network_grid"] == 64
    assert metrics["accuracy"] > 0.7  # four patterns: chance is 0.25
    # the protocol on the converted maps: die presets for both networks, the novel set at die level
    results = tmp_path / "protocol.json"
    code, _, err = invoke(
        capsys,
        "protocol",
        "--maps",
        out,
        "--holdout",
        "scratch",
        "--epochs",
        2,
        "--n-novel",
        6,
        "--out",
        results,
        "--accelerator",
        "cpu",
    )
    assert code == 0, err
    assert "die-level maps (26-27 cells across), resampled to the network's 64 grid" in err
    runs = json.loads(results.read_text())
    assert [(r["method"], r["novel_pattern"]) for r in runs] == [
        ("sparse", "scratch"),
        ("dense", "scratch"),
    ]
    assert all(0.0 <= r["metrics"]["novel_set_auroc"] <= 1.0 for r in runs)
