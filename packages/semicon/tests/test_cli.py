"""``wafer-monitor``: simulate, train, classify, evaluate from the shell; bad input exits 2.

Commands run in-process through :func:`convsuite.core_ops.cli.run`, as the console script does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from convsuite.core_ops.cli import run
from convsuite.semicon.cli import app
from convsuite.semicon.data import read_wafer_maps


def invoke(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Run ``wafer-monitor ARGS``; (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        run(app, [str(a) for a in args])
    captured = capsys.readouterr()
    return stop.value.code, captured.out, captured.err


def _succeed(*args: str | Path) -> None:
    """Run a command that must succeed (for module fixtures, which have no capsys)."""
    with pytest.raises(SystemExit) as stop:
        run(app, [str(a) for a in args])
    assert stop.value.code == 0, args


@pytest.fixture(scope="module")
def maps(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("maps")
    _succeed("simulate", "--n", 36, "--seed", 5, "--grid", 256, "--out", out)
    return out


TRAIN_OPTIONS = ("--holdout", "donut,scratch", "--preset", "tiny", "--epochs", 2)
LIGHTNING = ("--accelerator", "cpu", "--devices", "1", "--strategy", "auto", "--num-nodes", 1)


@pytest.fixture(scope="module")
def model(maps: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("model")
    args = ["train", maps, *TRAIN_OPTIONS, *LIGHTNING, "--out", out]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["wafer-monitor", *map(str, args)])
        _succeed(*args)
    return out


def test_simulate_writes_one_labelled_csv_per_map(maps: Path) -> None:
    files = sorted(maps.glob("*.csv"))
    assert len(files) == 36
    labels = {wafer.label for wafer in read_wafer_maps(files)}
    assert {"donut", "scratch", "none", "edge-ring"} <= labels


def test_train_leaves_the_held_out_patterns_out_and_records_its_command(model: Path) -> None:
    card = json.loads((model / "monitor.json").read_text())
    assert "donut" not in card["config"]["classes"] and "center" in card["config"]["classes"]
    assert card["outputs"]["classes"] == card["config"]["classes"]
    assert card["files"] == {"novelty": "monitor.novelty.json"}
    assert (model / "monitor.novelty.json").is_file()
    assert card["recipe"].startswith("wafer-monitor train ")
    assert "--accelerator cpu --devices 1 --strategy auto --num-nodes 1" in card["recipe"]


def test_train_names_its_files(maps: Path, tmp_path: Path, capsys) -> None:
    status, _, err = invoke(
        capsys, "train", maps, *TRAIN_OPTIONS, "--epochs", 1, "--out", tmp_path, "--name", "line3"
    )
    assert status == 0, err
    names = {p.name for p in tmp_path.iterdir() if p.is_file()}
    assert {"line3.safetensors", "line3.json", "line3.novelty.json"} == names


def test_classify_writes_one_row_per_map(maps: Path, model: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.csv"
    status, _, err = invoke(capsys, "classify", maps, "--model", model, "--out", out)
    assert status == 0, err
    table = pd.read_csv(out)
    assert len(table) == 36
    assert list(table.columns) == [
        "map_name",
        "class_name",
        "probability",
        "novelty_score",
        "is_novel",
        "msp_score",
    ]
    assert table["probability"].between(0, 1).all()
    assert f"36 maps, {int(table['is_novel'].sum())} flagged novel" in err
    # The same model by its weights file gives the same rows.
    again = tmp_path / "again.csv"
    weights = model / "monitor.safetensors"
    assert invoke(capsys, "classify", maps, "--model", weights, "--out", again)[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(again), table)


def test_classify_with_the_bundled_monitor(maps: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "results.csv"
    files = sorted(maps.glob("*.csv"))[:2]
    status, _, err = invoke(capsys, "classify", *files, "--out", out, "--device", "cpu")
    assert status == 0, err
    assert len(pd.read_csv(out)) == 2
    status, _, err = invoke(
        capsys, "classify", *files, "--out", out, "--model", "wafer_monitor_small"
    )
    assert status == 0, err


def test_evaluate_prints_metrics_and_writes_figures(
    maps: Path, model: Path, tmp_path: Path, capsys
) -> None:
    status, out, err = invoke(capsys, "evaluate", maps, "--model", model, "--figures", tmp_path)
    assert status == 0, err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "auroc", "oscr", "msp_auroc"} <= set(metrics)
    assert "auroc" in out
    for name in ("confusion_matrix.png", "novelty_scores.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def test_bad_input_exits_2_with_one_line_and_no_output(
    maps: Path, model: Path, tmp_path: Path, capsys
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("# diameter_mm: 300\n# pitch_mm: 0.5\nx,y\n")
    out = tmp_path / "results.csv"
    status, _, err = invoke(capsys, "classify", empty, "--model", model, "--out", out)
    assert status == 2 and err.count("\n") == 1 and "empty.csv" in err
    assert not out.exists()
    status, _, err = invoke(capsys, "train", maps, "--holdout", "spiral")
    assert status == 2 and err.count("\n") == 1 and "spiral" in err
    status, _, err = invoke(capsys, "train", maps, "--preset", "huge", "--out", tmp_path / "m")
    assert status == 2 and err.count("\n") == 1 and "presets: base, small, die, tiny" in err
    status, _, err = invoke(capsys, "train", maps, "--devices", "two", "--out", tmp_path / "m")
    assert status == 2 and err.count("\n") == 1 and "--devices" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_protocol_reports_both_methods_per_held_out_pattern(tmp_path: Path, capsys) -> None:
    out = tmp_path / "protocol.json"
    args = ("--holdout", "center", "--n-train", 24, "--n-val", 12, "--n-test", 12)
    status, printed, err = invoke(
        capsys,
        "protocol",
        *args,
        "--grid",
        256,
        "--preset",
        "tiny",
        "--epochs",
        1,
        "--accelerator",
        "cpu",
        "--out",
        out,
    )
    assert status == 0, err
    runs = json.loads(out.read_text())
    assert [(r["method"], r["novel_pattern"]) for r in runs] == [
        ("sparse", "center"),
        ("dense", "center"),
    ]
    assert all("auroc" in r["metrics"] for r in runs) and "mean" in printed
    status, _, err = invoke(capsys, "protocol", "--preset", "huge")
    assert status == 2 and err.count("\n") == 1


@pytest.mark.parametrize("command", ["simulate", "train", "classify", "evaluate", "protocol"])
def test_every_command_has_help_with_an_example(command: str, capsys) -> None:
    status, out, _ = invoke(capsys, command, "--help")
    assert status == 0 and f"Example: wafer-monitor {command}" in " ".join(out.split())


def test_train_help_shows_the_lightning_options(capsys) -> None:
    out = " ".join(invoke(capsys, "train", "--help")[1].split())
    for option in ("--accelerator", "--devices", "--strategy", "--num-nodes", "--batch-size"):
        assert option in out


def test_importing_the_cli_imports_no_heavy_module() -> None:
    heavy = ("torch", "lightning", "sklearn", "scipy", "matplotlib", "pandas")
    code = (
        "import sys, convsuite.semicon.cli, convsuite.semicon; "
        f"print([m for m in {heavy!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


def test_the_package_exports_resolve_lazily() -> None:
    import convsuite.semicon as semicon

    assert all(getattr(semicon, name) is not None for name in semicon.__all__)
    assert semicon.fit_monitor.__module__ == "convsuite.semicon.train"
    with pytest.raises(AttributeError, match="no attribute 'preset'"):
        semicon.preset  # noqa: B018
