"""``eels-anomaly``: outputs of detect, one-line refusals with exit 2 and no outputs, simulate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convsuite.core_ops.hub import model_config
from convsuite.materials.model import EELSVAE


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from convsuite.materials.train import save_network

    net = EELSVAE(model_config("eels_vae", "tiny"))
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    return save_network(net, path, "test", "none", {})


def test_detect_writes_every_output(
    invoke, small_cube_file: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    import hyperspy.api as hs

    out = tmp_path / "out"
    status, stdout, stderr = invoke(
        "detect", small_cube_file, "--out", out, "--weights", tiny_weights, "--no-fit"
    )
    assert status == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "anomalies.png",
        "mask.hspy",
        "scores.hspy",
        "spectra.png",
        "summary.json",
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_pixels"] == 24 * 24 and summary["window_ev"] == [690.0, 730.0]
    assert (summary["threshold_method"], summary["reference"]) == ("null", "either")
    assert summary["false_alarm"] == 5e-4
    scores = hs.load(out / "scores.hspy")
    mask = hs.load(out / "mask.hspy")
    assert scores.data.shape == (24, 24) and mask.data.dtype == bool
    assert int(mask.data.sum()) == summary["n_flagged"]
    assert np.array_equal(mask.data, scores.data > summary["threshold"])
    assert (out / "anomalies.png").read_bytes()[:4] == b"\x89PNG"
    assert "flagged" in stdout


def _refused(invoke, *args) -> str:
    status, _, stderr = invoke(*args)
    assert status == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:")
    return lines[0]


def test_bad_input_exits_2_with_one_line_and_no_output(
    invoke, small_cube, small_cube_file: Path, tiny_weights: Path, tmp_path: Path
) -> None:
    from convsuite.materials.data import write_signal

    out = tmp_path / "out"
    common = ("--out", out, "--weights", tiny_weights, "--no-fit")
    cut = tmp_path / "cut.hspy"
    cut.write_bytes(small_cube_file.read_bytes()[:5000])
    assert "cut.hspy" in _refused(invoke, "detect", cut, *common)
    uncalibrated = small_cube.deepcopy()
    uncalibrated.axes_manager.signal_axes[0].units = "px"
    path = write_signal(uncalibrated, tmp_path / "px.hspy")
    assert "no energy axis" in _refused(invoke, "detect", path, *common)
    nan = small_cube.deepcopy()
    nan.data[:] = np.nan
    assert "NaN" in _refused(invoke, "detect", write_signal(nan, tmp_path / "nan.hspy"), *common)
    assert "outside" in _refused(
        invoke, "detect", small_cube_file, *common, "--window", "600", "700"
    )
    assert not out.exists()
    assert "is also an input" in _refused(
        invoke, "detect", small_cube_file, "--out", small_cube_file, "--weights", tiny_weights
    )
    assert "checkpoint" in _refused(
        invoke, "detect", small_cube_file, "--out", out, "--weights", tmp_path / "no.safetensors"
    )
    assert "null, otsu" in _refused(invoke, "detect", small_cube_file, *common, "--threshold", "x")
    assert "local, network" in _refused(
        invoke, "detect", small_cube_file, *common, "--reference", "ring"
    )
    assert not out.exists()
    runs = tmp_path / "runs"
    assert "1, 2 or 4" in _refused(invoke, "train", "--out", runs, "--cell", 3)
    assert "--init" in _refused(invoke, "train", "--out", runs, "--init", tiny_weights, "--cell", 1)
    assert "--init" in _refused(
        invoke, "train", "--out", runs, "--init", tiny_weights, "--no-spatial-mean"
    )
    assert "1 or 3" in _refused(invoke, "train", "--out", runs, "--spatial-kernel", 5)
    assert "needs --cell 1" in _refused(invoke, "train", "--out", runs, "--spatial-kernel", 1)
    assert "--beta" in _refused(invoke, "train", "--out", runs, "--init", tiny_weights, "--beta", 1)
    assert not runs.exists()


def test_train_continues_with_the_init_weights_options(
    invoke, tiny_weights: Path, tmp_path: Path
) -> None:
    """``train --init`` accepts --cell / --spatial-mean / --spatial-kernel / --beta equal to the
    init weights' config (the README's continuation command repeats them) and keeps that config;
    a fresh network takes --beta into its config."""
    out = tmp_path / "runs"
    status, _, stderr = invoke(
        "train", "--out", out, "--init", tiny_weights, "--cell", 4, "--spatial-mean",
        "--spatial-kernel", 3, "--beta", 1.2, "--cubes", 1, "--size", 48, "--epochs", 1,
        "--shards", 2, "--batch-size", 2,
    )  # fmt: skip
    assert status == 0, stderr
    card = json.loads((out / "eels_vae.json").read_text())
    assert card["config"] == model_config("eels_vae", "tiny").to_dict()
    fresh = tmp_path / "fresh"
    status, _, stderr = invoke(
        "train", "--out", fresh, "--preset", "tiny", "--cell", 1, "--no-spatial-mean",
        "--spatial-kernel", 1, "--beta", 0.01, "--cubes", 1, "--size", 48, "--epochs", 1,
        "--shards", 2, "--batch-size", 2,
    )  # fmt: skip
    assert status == 0, stderr
    config = json.loads((fresh / "eels_vae.json").read_text())["config"]
    assert (config["beta"], config["cell"], config["spatial_kernel"]) == (0.01, 1, 1)
    assert config["spatial_mean"] is False


def test_simulate_writes_ground_truth(invoke, tmp_path: Path) -> None:
    from convsuite.materials.data import read_spectrum_image

    path = tmp_path / "sim.hspy"
    status, _, stderr = invoke(
        "simulate", "--out", path, "--seed", 3, "--size", 16, "--count", 12, "--shift", 4
    )
    assert status == 0, stderr
    cube = read_spectrum_image(path)
    assert cube.data.shape[:2] == (16, 16)
    assert cube.metadata.Anomalies.mask.sum() == 12
    assert "must be" in _refused(invoke, "simulate", "--out", tmp_path / "x.hspy", "--kind", "warp")


def test_help_has_examples_and_imports_no_torch() -> None:
    code = (
        "import sys, convsuite.materials.cli\n"
        "assert 'torch' not in sys.modules and 'hyperspy' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    for command in ("detect", "fit", "train", "simulate", "evaluate"):
        shown = subprocess.run(
            [sys.executable, "-m", "convsuite.materials.cli", command, "--help"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "Example: eels-anomaly" in shown


def test_fit_trains_on_a_bulk_region(invoke, tiny_weights: Path, tmp_path: Path) -> None:
    from convsuite.materials.data import EnergyAxis, simulate_cube, write_signal
    from convsuite.materials.infer import load_network

    cube = write_signal(
        simulate_cube((56, 32), seed=9, anomalies=(), energy=EnergyAxis(650, 0.5, 240)),
        tmp_path / "bulk.hspy",
    )
    out = tmp_path / "mine.safetensors"
    region = ("--bulk-region", 0, 0, 56, 32)
    status, stdout, stderr = invoke(
        "fit", cube, *region, "--out", out, "--weights", tiny_weights, "--epochs", 1
    )
    assert status == 0, stderr
    net = load_network(out)
    assert net.card.training_data.endswith("bulk region (0, 0, 56, 32)")
    assert "held-out loss" in stdout
    assert "not inside" in _refused(
        invoke, "fit", cube, "--bulk-region", 0, 0, 90, 32, "--out", tmp_path / "x.safetensors"
    )
    assert not (tmp_path / "x.safetensors").exists()
