"""``wafer-monitor``: simulate, train, classify, evaluate from the shell; bad input exits 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from convsuite.semicon.cli import app
from convsuite.semicon.data import read_wafer_maps

runner = CliRunner()


def _invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("maps")
    result = _invoke("simulate", "--n", 36, "--seed", 5, "--grid", 256, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def model(maps: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    args = ("--holdout", "donut,scratch", "--preset", "tiny", "--epochs", 2, "--out", out)
    result = _invoke("train", maps, *args)
    assert result.exit_code == 0, result.output
    return out


def test_simulate_writes_one_labelled_csv_per_map(maps: Path) -> None:
    files = sorted(maps.glob("*.csv"))
    assert len(files) == 36
    labels = {wafer.label for wafer in read_wafer_maps(files)}
    assert {"donut", "scratch", "none", "edge-ring"} <= labels


def test_train_leaves_the_held_out_patterns_out(model: Path) -> None:
    card = json.loads((model / "monitor.json").read_text())
    assert "donut" not in card["config"]["classes"] and "center" in card["config"]["classes"]
    assert (model / "monitor.novelty.json").is_file()


def test_classify_writes_one_row_per_map(maps: Path, model: Path, tmp_path: Path) -> None:
    out = tmp_path / "results.csv"
    result = _invoke("classify", maps, "--model", model, "--out", out)
    assert result.exit_code == 0, result.output
    table = pd.read_csv(out)
    assert len(table) == 36
    assert set(table.columns) >= {
        "map_name",
        "class_name",
        "probability",
        "novelty_score",
        "is_novel",
    }
    assert table["probability"].between(0, 1).all()


def test_evaluate_prints_metrics_and_writes_figures(
    maps: Path, model: Path, tmp_path: Path
) -> None:
    result = _invoke("evaluate", maps, "--model", model, "--figures", tmp_path)
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "auroc", "oscr", "msp_auroc"} <= set(metrics)
    for name in ("confusion_matrix.png", "novelty_scores.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_bad_input_exits_2_with_one_line_and_no_output(model: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("# diameter_mm: 300\n# pitch_mm: 0.5\nx,y\n")
    out = tmp_path / "results.csv"
    result = _invoke("classify", empty, "--model", model, "--out", out)
    assert result.exit_code == 2 and "empty.csv" in result.output
    assert not out.exists()
    result = _invoke("train", tmp_path, "--holdout", "spiral")
    assert result.exit_code == 2 and "spiral" in result.output


def test_protocol_reports_both_methods_per_held_out_pattern(tmp_path: Path) -> None:
    out = tmp_path / "protocol.json"
    args = ("--holdout", "center", "--n-train", 24, "--n-val", 12, "--n-test", 12)
    result = _invoke(
        "protocol", *args, "--grid", 256, "--preset", "tiny", "--epochs", 1, "--out", out
    )
    assert result.exit_code == 0, result.output
    runs = json.loads(out.read_text())
    assert [(r["method"], r["novel_pattern"]) for r in runs] == [
        ("sparse", "center"),
        ("dense", "center"),
    ]
    assert all("auroc" in r["metrics"] for r in runs) and "mean" in result.output
    assert _invoke("protocol", "--preset", "huge").exit_code == 2


@pytest.mark.parametrize("command", ["simulate", "train", "classify", "evaluate", "protocol"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and f"Example: wafer-monitor {command}" in result.output
