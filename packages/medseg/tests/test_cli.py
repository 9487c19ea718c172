"""``medseg cxr``: simulate, train, segment, evaluate from the shell; bad input exits 2 in one line.

Commands run in-process through ``core_ops.cli.run`` (as the console script does) and their exit
status and stderr are read back; the one-line and ``--help`` timing properties are checked in a
subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch
from PIL import Image

from convsuite.core_ops.cli import run
from convsuite.core_ops.hub import model_config
from convsuite.medseg import HybridGNet
from convsuite.medseg.cli import app
from convsuite.medseg.data.images import read_mask
from convsuite.medseg.data.layout import scan_dataset
from convsuite.medseg.evaluate import evaluate_dataset

if TYPE_CHECKING:
    from conftest import Medseg

MEDSEG = Path(sys.executable).parent / "medseg"


@pytest.fixture(scope="module")
def phantoms(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("phantoms")
    with pytest.raises(SystemExit) as exit_info:
        run(app, ["cxr", "simulate", "--n", "6", "--seed", "3", "--size", "96", "--out", str(out)])
    assert exit_info.value.code == 0
    return out


def test_simulate_writes_the_landmark_layout_reproducibly(
    phantoms: Path, tmp_path: Path, medseg: Medseg
) -> None:
    samples = scan_dataset(phantoms, ("RL", "LL", "H"))
    assert len(samples) == 6
    image, landmarks = samples[0].read()
    assert image.shape == (96, 96) and landmarks["RL"].shape == (44, 2)
    meta = json.loads((phantoms / "meta.json").read_text())
    assert meta["seed"] == 3 and meta["pixel_spacing_mm"] == pytest.approx(0.35 * 1024 / 96)
    again = tmp_path / "again"
    assert medseg("cxr", "simulate", "--n", 2, "--seed", 3, "--size", 96, "--out", again) == 0
    first = sorted((phantoms / "landmarks" / "H").iterdir())[0]
    np.testing.assert_array_equal(np.load(first), np.load(again / "landmarks" / "H" / first.name))


def test_segment_writes_landmarks_masks_overlay_and_uncertainty(
    tiny_weights: Path, phantoms: Path, tmp_path: Path, medseg: Medseg
) -> None:
    image_path = sorted((phantoms / "images").iterdir())[0]
    wide = tmp_path / "wide.png"  # a non-square input: landmarks must come back in its pixels
    Image.fromarray(np.pad(np.asarray(Image.open(image_path)), ((0, 0), (20, 20)))).save(wide)
    out = tmp_path / "out"
    args = ("--weights", tiny_weights, "--samples", 3, "--device", "cpu", "--out", out)
    assert medseg("cxr", "segment", wide, *args) == 0
    record = json.loads((out / "wide.json").read_text())
    assert record["image_shape"] == [96, 136]
    assert set(record["landmarks"]) == {"RL", "LL", "H"}
    assert len(record["landmarks"]["LL"]) == 50 and len(record["uncertainty_px"]["H"]) == 26
    points = np.load(out / "wide_landmarks.npy")
    assert points.shape == (120, 2)
    np.testing.assert_allclose(points[:44], record["landmarks"]["RL"], atol=1e-3)
    assert read_mask(out / "wide_mask_H.png").shape == (96, 136)
    assert (out / "wide_overlay.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["wide.json", "wide_landmarks.npy", "wide_overlay.png"]
        + [f"wide_mask_{organ}.png" for organ in ("RL", "LL", "H")]
    )  # nothing staged is left behind


def test_segment_in_bf16_keeps_the_landmarks_of_float32(
    phantoms: Path, tmp_path: Path, medseg: Medseg
) -> None:
    """``--precision bf16`` (core-ops' precision API) moves no landmark of the bundled network far."""
    image_path = sorted((phantoms / "images").iterdir())[0]
    landmarks = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        assert medseg("cxr", "segment", image_path, "--precision", precision, "--out", out) == 0
        landmarks[precision] = np.load(out / f"{image_path.stem}_landmarks.npy")
    shift = np.linalg.norm(landmarks["bf16"] - landmarks["fp32"], axis=1)
    assert 0 < shift.max() < 1.5  # pixels of a 96 px image: bf16 did run, and stayed close
    assert medseg("cxr", "segment", image_path, "--precision", "fp16", "--out", tmp_path / "x") == 2


def test_segment_converts_a_colour_image_to_grey_with_a_warning(
    tiny_weights: Path, tmp_path: Path, medseg: Medseg
) -> None:
    colour = tmp_path / "colour.png"
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200  # a red picture (a viewer screenshot), not a grey radiograph stored as RGB
    Image.fromarray(rgb).save(colour)
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="colour.png: a 3-channel colour image, converted"):
        assert medseg("cxr", "segment", colour, "--weights", tiny_weights, "--out", out) == 0
    assert (out / "colour.json").is_file() and (out / "colour_overlay.png").is_file()


def test_segment_refuses_a_missing_checkpoint_and_a_missing_image(
    tmp_path: Path, phantoms: Path, medseg: Medseg
) -> None:
    image_path = sorted((phantoms / "images").iterdir())[0]
    missing = tmp_path / "no.safetensors"
    line = medseg.refused("cxr", "segment", image_path, "--weights", missing)
    assert "no.safetensors" in line and "does not exist" in line
    line = medseg.refused("cxr", "segment", tmp_path / "nothing.png", "--out", tmp_path / "o")
    assert "nothing.png: file does not exist" in line
    assert "no bundled checkpoint" in medseg.refused(
        "cxr", "segment", image_path, "--weights", "nope"
    )


def test_device_is_the_torch_device_and_train_takes_lightning_options(
    tiny_weights: Path, phantoms: Path, tmp_path: Path, medseg: Medseg
) -> None:
    image_path = sorted((phantoms / "images").iterdir())[0]
    segment = ("cxr", "segment", image_path, "--weights", tiny_weights, "--out", tmp_path)
    assert "--device: 'gpu' is not a torch device" in medseg.refused(*segment, "--device", "gpu")
    assert "cuda:99 is not available" in medseg.refused(*segment, "--device", "cuda:99")
    line = medseg.refused("cxr", "train", phantoms, "--device", "cpu")
    assert "No such option: --device" in line  # train has --accelerator, not --device
    line = medseg.refused("cxr", "train", phantoms, "--devices", "two", "--out", tmp_path)
    assert "--devices: must be auto, a count or ids" in line
    assert "no preset of that name" in medseg.refused(
        "cxr", "train", phantoms, "--preset", "huge", "--out", tmp_path / "run"
    )


def test_evaluate_gives_the_figures_of_evaluate_dataset(
    tiny_weights: Path, phantoms: Path, tmp_path: Path, medseg: Medseg
) -> None:
    summary_path = tmp_path / "summary.json"
    assert (
        medseg("cxr", "evaluate", phantoms, "--weights", tiny_weights, "--out", summary_path) == 0
    )
    summary = json.loads(summary_path.read_text())
    spacing = json.loads((phantoms / "meta.json").read_text())["pixel_spacing_mm"]
    direct = evaluate_dataset(
        HybridGNet.from_pretrained(tiny_weights), phantoms, pixel_spacing_mm=spacing, progress=False
    )
    assert set(summary) == {"HybridGNet"}
    expected = direct["HybridGNet"].summary()
    assert set(summary["HybridGNet"]) == set(expected) and len(expected) == 3 * 3 + 1
    for key, value in expected.items():
        assert summary["HybridGNet"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_evaluate_refuses_a_folder_without_samples_and_an_output_over_its_data(
    tiny_weights: Path, phantoms: Path, tmp_path: Path, medseg: Medseg
) -> None:
    line = medseg.refused("cxr", "evaluate", tmp_path, "--weights", tiny_weights)
    assert str(tmp_path.name) in line and "images/" in line
    meta = phantoms / "meta.json"
    before = meta.read_bytes()
    line = medseg.refused("cxr", "evaluate", phantoms, "--weights", tiny_weights, "--out", meta)
    assert "meta.json: is also an input" in line and meta.read_bytes() == before


def test_train_exports_weights_with_a_model_card(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medseg: Medseg
) -> None:
    out = tmp_path / "run"
    args = ["cxr", "train", str(phantoms), "--preset", "tiny", "--epochs", "1"]
    args += ["--batch-size", "4", "--accelerator", "cpu", "--devices", "1", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["medseg", *args])
    assert medseg(*args) == 0
    net = HybridGNet.from_pretrained(out / "hybridgnet.safetensors")
    assert net.config == model_config("hybridgnet", "tiny")
    card = json.loads((out / "hybridgnet.json").read_text())
    assert card["recipe"] == "medseg " + " ".join(args)
    assert card["card_version"] == 2 and card["inputs"]["image_size"] == 64
    assert card["inputs"]["organs"] == ["RL", "LL", "H"] and card["outputs"]["landmarks"]["H"] == 26
    assert set(card["metrics"]) == {"train_seconds", "steps", "planned_steps", "val_mse_px2"}


def test_train_the_baseline_exports_a_unet_card(
    phantoms: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, medseg: Medseg
) -> None:
    out = tmp_path / "unet"
    args = ["cxr", "train", str(phantoms), "--baseline", "--preset", "tiny", "--epochs", "1"]
    args += ["--batch-size", "4", "--accelerator", "cpu", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["medseg", *args])
    assert medseg(*args) == 0
    card = json.loads((out / "unet.json").read_text())
    assert card["architecture"] == "UNetBaseline" and card["config"]["widths"] == [4, 8, 16]
    assert card["inputs"]["image_size"] == 64 and set(card["metrics"]) == {
        "train_seconds",
        "steps",
        "planned_steps",
        "val_dice",
    }


@pytest.mark.parametrize("command", ["simulate", "train", "segment", "evaluate"])
def test_every_command_has_help_with_an_example(command: str, medseg: Medseg) -> None:
    assert medseg("cxr", command, "--help") == 0
    assert "Example: medseg cxr " + command in " ".join(medseg.capsys.readouterr().out.split())


def test_train_with_init_starts_from_the_given_weights(
    tiny_weights: Path,
    phantoms: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    medseg: Medseg,
) -> None:
    """With lr 0 the only change training can make is to BatchNorm's running statistics."""
    out = tmp_path / "run"
    args = ["cxr", "train", str(phantoms), "--init", str(tiny_weights), "--lr", "0"]
    args += ["--epochs", "1", "--batch-size", "4", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", ["medseg", *args])
    assert medseg(*args) == 0
    start = HybridGNet.from_pretrained(tiny_weights).state_dict()
    trained = HybridGNet.from_pretrained(out / "hybridgnet.safetensors").state_dict()
    weights = [name for name in start if name.endswith("weight")]
    assert len(weights) > 10
    for name in weights:
        torch.testing.assert_close(trained[name], start[name])
    assert "--init" in json.loads((out / "hybridgnet.json").read_text())["recipe"]


def test_importing_the_cli_imports_nothing_heavy() -> None:
    heavy = ("torch", "lightning", "monai", "matplotlib", "scipy", "sklearn", "skimage", "numpy")
    code = f"import convsuite.medseg.cli, sys; print([m for m in {heavy!r} if m in sys.modules])"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_help_is_fast_and_a_bad_call_is_one_line() -> None:
    started = time.perf_counter()
    result = subprocess.run([MEDSEG, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "cxr" in result.stdout
    assert time.perf_counter() - started < 3.0  # about 0.4 s idle; generous for a busy machine
    result = subprocess.run([MEDSEG, "cxr", "segment", "--bogus"], capture_output=True, text=True)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1
    assert lines[0].startswith("error: No such option: --bogus")
