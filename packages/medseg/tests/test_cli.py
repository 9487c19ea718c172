"""``medseg cxr``: simulate, train, segment, evaluate from the shell; bad input exits 2 cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from convsuite.core_ops.hub import create_model, model_config
from convsuite.core_ops.io import save_checkpoint
from convsuite.medseg import HybridGNet
from convsuite.medseg.cli import app
from convsuite.medseg.data.images import read_mask
from convsuite.medseg.data.layout import scan_dataset

runner = CliRunner()


def _invoke(*args: str | Path):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny HybridGNet checkpoint: the files it writes are checked, not its accuracy."""
    net = create_model("hybridgnet", preset="tiny")
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    card = net.model_card(recipe="test", training_data="none", intended_use="tests")
    return save_checkpoint(net.state_dict(), path, card)


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantoms")
    result = _invoke("cxr", "simulate", "--n", 6, "--seed", 3, "--size", 96, "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_simulate_writes_the_landmark_layout_reproducibly(phantoms: Path, tmp_path: Path) -> None:
    samples = scan_dataset(phantoms, ("RL", "LL", "H"))
    assert len(samples) == 6
    image, landmarks = samples[0].read()
    assert image.shape == (96, 96) and landmarks["RL"].shape == (44, 2)
    meta = json.loads((phantoms / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["pixel_spacing_mm"] == pytest.approx(0.35 * 1024 / 96)
    again = tmp_path / "again"
    _invoke("cxr", "simulate", "--n", 2, "--seed", 3, "--size", 96, "--out", again)
    first = sorted((phantoms / "landmarks" / "H").iterdir())[0]
    np.testing.assert_array_equal(np.load(first), np.load(again / "landmarks" / "H" / first.name))


def test_segment_writes_landmarks_masks_overlay_and_uncertainty(
    tiny_weights: Path, phantoms: Path, tmp_path: Path
) -> None:
    image_path = sorted((phantoms / "images").iterdir())[0]
    wide = tmp_path / "wide.png"  # a non-square input: landmarks must come back in its pixels
    Image.fromarray(np.pad(np.asarray(Image.open(image_path)), ((0, 0), (20, 20)))).save(wide)
    out = tmp_path / "out"
    result = _invoke(
        "cxr", "segment", wide, "--weights", tiny_weights, "--samples", 3, "--out", out
    )
    assert result.exit_code == 0, result.output
    record = json.loads((out / "wide.json").read_text())
    assert record["image_shape"] == [96, 136]
    assert set(record["landmarks"]) == {"RL", "LL", "H"}
    assert len(record["landmarks"]["LL"]) == 50 and len(record["uncertainty_px"]["H"]) == 26
    points = np.load(out / "wide_landmarks.npy")
    assert points.shape == (120, 2)
    np.testing.assert_allclose(points[:44], record["landmarks"]["RL"], atol=1e-3)
    assert read_mask(out / "wide_mask_H.png").shape == (96, 136)
    assert (out / "wide_overlay.png").read_bytes()[:4] == b"\x89PNG"


def test_segment_refuses_a_colour_image_with_exit_2_and_writes_nothing(
    tiny_weights: Path, tmp_path: Path
) -> None:
    colour = tmp_path / "colour.png"
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200  # a red picture, not a grey radiograph stored as RGB
    Image.fromarray(rgb).save(colour)
    out = tmp_path / "out"
    result = _invoke("cxr", "segment", colour, "--weights", tiny_weights, "--out", out)
    assert result.exit_code == 2
    assert "colour.png" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


def test_segment_refuses_a_missing_checkpoint(tmp_path: Path, phantoms: Path) -> None:
    image_path = sorted((phantoms / "images").iterdir())[0]
    result = _invoke("cxr", "segment", image_path, "--weights", tmp_path / "no.safetensors")
    assert result.exit_code == 2 and "no.safetensors" in result.output


def test_evaluate_reports_each_organ_and_writes_a_summary(
    tiny_weights: Path, phantoms: Path, tmp_path: Path
) -> None:
    summary_path = tmp_path / "summary.json"
    result = _invoke("cxr", "evaluate", phantoms, "--weights", tiny_weights, "--out", summary_path)
    assert result.exit_code == 0, result.output
    summary = json.loads(summary_path.read_text())["HybridGNet"]
    for organ in ("RL", "LL", "H"):
        assert 0.0 <= summary[f"dice_{organ}"] <= 1.0 and summary[f"hd_mm_{organ}"] > 0
        assert 0.0 <= summary[f"valid_{organ}"] <= 1.0
    assert summary["landmark_mse_px2"] > 0


def test_evaluate_refuses_a_folder_without_samples(tiny_weights: Path, tmp_path: Path) -> None:
    result = _invoke("cxr", "evaluate", tmp_path, "--weights", tiny_weights)
    assert result.exit_code == 2 and str(tmp_path.name) in result.output


def test_train_exports_weights_with_a_model_card(phantoms: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = _invoke(
        "cxr", "train", phantoms, "--preset", "tiny", "--epochs", 1, "--batch-size", 4, "--out", out
    )
    assert result.exit_code == 0, result.output
    net = HybridGNet.from_pretrained(out / "hybridgnet.safetensors")
    assert net.config == model_config("hybridgnet", "tiny")
    card = json.loads((out / "hybridgnet.json").read_text())
    assert card["recipe"].startswith("medseg cxr train") and "val_mse_px2" in card["metrics"]


@pytest.mark.parametrize("command", ["simulate", "train", "segment", "evaluate"])
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = runner.invoke(app, ["cxr", command, "--help"])
    assert result.exit_code == 0 and "Example: medseg cxr " + command in result.output


def test_train_with_init_starts_from_the_given_weights(
    tiny_weights: Path, phantoms: Path, tmp_path: Path
) -> None:
    """With lr 0 the only change training can make is to BatchNorm's running statistics."""
    out = tmp_path / "run"
    args = ("--init", tiny_weights, "--lr", 0, "--epochs", 1, "--batch-size", 4, "--out", out)
    result = _invoke("cxr", "train", phantoms, *args)
    assert result.exit_code == 0, result.output
    start = HybridGNet.from_pretrained(tiny_weights).state_dict()
    trained = HybridGNet.from_pretrained(out / "hybridgnet.safetensors").state_dict()
    weights = [name for name in start if name.endswith("weight")]
    assert len(weights) > 10
    for name in weights:
        torch.testing.assert_close(trained[name], start[name])
    assert "--init" in json.loads((out / "hybridgnet.json").read_text())["recipe"]
