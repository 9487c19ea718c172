"""``medseg ivd``: simulate, segment, evaluate from the shell; bad subjects exit 2 in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import pytest
import torch

from convsuite.medseg.data.ivdm3seg import read_subject

if TYPE_CHECKING:
    from conftest import Medseg


def test_simulate_writes_the_ivdm3seg_layout(tmp_path: Path, medseg: Medseg) -> None:
    out = tmp_path / "spine"
    assert medseg("ivd", "simulate", "--n", "1", "--seed", "4", "--out", out, "--no-gzip") == 0
    names = sorted(p.name for p in (out / "00").iterdir())
    assert names == [f"00_{k}.nii" for k in ("Labels", "fat", "inn", "opp", "wat")]
    subject = read_subject(out / "00")
    assert sorted(subject.image.shape[1:]) == [36, 256, 256]
    assert sorted(np.round(subject.spacing, 3)) == [1.25, 1.25, 2.0]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 4 and meta["subjects"][0]["name"] == "00"


def test_segment_writes_labels_discs_and_overlay_per_subject(
    spines: Path, ivd_tiny_weights: Path, tmp_path: Path, medseg: Medseg
) -> None:
    out = tmp_path / "out"
    subjects = [spines / "00", spines / "01"]
    assert medseg("ivd", "segment", *subjects, "--weights", ivd_tiny_weights, "--out", out) == 0
    for folder in subjects:
        result = out / folder.name
        assert sorted(p.name for p in result.iterdir()) == [
            "discs.json",
            "labels.nii.gz",
            "overlay.png",
        ]
        labels = nib.load(result / "labels.nii.gz")
        source = nib.load(folder / f"{folder.name}_fat.nii.gz")
        assert labels.shape == source.shape
        np.testing.assert_allclose(labels.affine, source.affine)
        assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1}
        discs = json.loads((result / "discs.json").read_text())["discs"]
        heights = [d["centroid_mm"][2] for d in discs]
        assert heights == sorted(heights, reverse=True)
        assert [d["index"] for d in discs] == list(range(1, len(discs) + 1))


def test_segment_shifts_option_reaches_the_network(
    ivd_tiny_weights: Path, tmp_path: Path, medseg: Medseg, monkeypatch
) -> None:  # noqa: ANN001
    """--shifts runs the tiny preset (2.5 mm) on 4 grids of a 1.25 mm scan, --no-shifts on one:
    4x the forward calls."""
    from convsuite.medseg.data.ivdm3seg import write_subject
    from convsuite.medseg.models.ivdnet import IVDNet

    image = np.random.default_rng(0).uniform(0, 1000, (4, 4, 64, 48))
    subject = write_subject(tmp_path, "00", image, np.diag([6.0, 1.25, 1.25, 1.0]))

    calls = []
    forward = IVDNet.forward
    monkeypatch.setattr(IVDNet, "forward", lambda self, x: calls.append(1) or forward(self, x))
    counts = {}
    for option in ("--shifts", "--no-shifts"):
        calls.clear()
        args = ("ivd", "segment", subject, "--weights", ivd_tiny_weights)
        assert medseg(*args, "--out", tmp_path / option, option) == 0
        counts[option] = len(calls)
    assert counts["--no-shifts"] > 0 and counts["--shifts"] == 4 * counts["--no-shifts"]


def test_a_bad_subject_exits_2_in_one_line_and_gets_no_output(
    spines: Path, ivd_tiny_weights: Path, tmp_path: Path, medseg: Medseg
) -> None:
    import shutil

    broken = tmp_path / "07"
    shutil.copytree(spines / "00", broken)
    for path in broken.iterdir():
        path.rename(broken / path.name.replace("00_", "07_"))
    (broken / "07_wat.nii.gz").unlink()
    out = tmp_path / "out"
    line = medseg.refused("ivd", "segment", broken, "--weights", ivd_tiny_weights, "--out", out)
    assert "07" in line and "has no wat volume" in line
    assert not out.exists()
    # NaN in one volume: found while reading; the subjects before it keep their outputs
    shutil.copy(spines / "00" / "00_wat.nii.gz", broken / "07_wat.nii.gz")
    volume = nib.load(broken / "07_fat.nii.gz")
    data = np.asarray(volume.dataobj).astype(np.float32)
    data[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, volume.affine), broken / "07_fat.nii.gz")
    args = ("ivd", "segment", spines / "01", broken, "--weights", ivd_tiny_weights, "--out", out)
    line = medseg.refused(*args)
    assert "07_fat.nii.gz" in line and "NaN" in line
    assert (out / "01" / "discs.json").is_file() and not (out / "07").exists()


def test_evaluate_scores_each_method(
    spines: Path, ivd_tiny_weights: Path, tmp_path: Path, medseg: Medseg
) -> None:
    from convsuite.core_ops.hub import create_model
    from convsuite.core_ops.io import save_checkpoint

    baseline = create_model("unet_early_fusion", preset="tiny")
    card = baseline.model_card(recipe="test", training_data="none", intended_use="tests")
    path = save_checkpoint(baseline.state_dict(), tmp_path / "early.safetensors", card)
    out = tmp_path / "scores.json"
    status = medseg(
        "ivd", "evaluate", spines / "01", "--weights", ivd_tiny_weights, "--baseline", path,
        "--out", out, "--figure", tmp_path / "bars.png",
    )  # fmt: skip
    assert status == 0
    record = json.loads(out.read_text())
    assert set(record["summary"]) == {"IVDNet", "EarlyFusionUNet"}
    first = record["subjects"]["IVDNet"][0]
    assert first["true_discs"] == 7 and len(first["discs"]) == 7
    assert (tmp_path / "bars.png").stat().st_size > 1000


def test_train_exports_weights_validated_at_the_last_step(
    spines: Path, tmp_path: Path, medseg: Medseg
) -> None:
    from convsuite.core_ops.io import read_card
    from convsuite.medseg import IVDNet

    out = tmp_path / "run"
    args = ("--preset", "tiny", "--max-steps", "3", "--batch-size", "2", "--loss", "dicece")
    assert medseg("ivd", "train", spines, "--out", out, *args, "--accelerator", "cpu") == 0
    card = read_card(out / "ivdnet.json")
    assert card.metrics["steps"] == 3 and 0 <= card.metrics["val_dice"] <= 1
    assert "loss dicece" in card.training_data  # (the recipe is this process's command line)
    assert IVDNet.from_pretrained(out / "ivdnet.safetensors").config.ngf == 2
    lines = (out / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
    validated = [line for line in lines[1:] if line.split(",")[-1]]
    assert [line.split(",")[1] for line in validated] == ["2"]  # after the 3rd (last) step


def test_train_fine_tunes_from_init_and_refuses_another_network(
    spines: Path, tmp_path: Path, medseg: Medseg, capsys
) -> None:  # noqa: ANN001
    """``--init``: with lr 0 one step leaves every parameter as the starting weights hold it (a
    random start would not); a checkpoint of another architecture is refused in one line."""
    from convsuite.core_ops.io import read_card
    from convsuite.medseg import IVDNet

    args = ("--preset", "tiny", "--max-steps", "1", "--batch-size", "2", "--accelerator", "cpu")
    start = tmp_path / "start"
    assert medseg("ivd", "train", spines, "--out", start, *args) == 0
    init = start / "ivdnet.safetensors"
    tuned = tmp_path / "tuned"
    assert medseg("ivd", "train", spines, "--out", tuned, *args, "--init", init, "--lr", "0") == 0
    before = dict(IVDNet.from_pretrained(init).named_parameters())
    after = dict(IVDNet.from_pretrained(tuned / "ivdnet.safetensors").named_parameters())
    assert all(torch.equal(before[name], value) for name, value in after.items())
    assert "fine-tuned from ivdnet.safetensors" in read_card(tuned / "ivdnet.json").training_data
    capsys.readouterr()
    other = ("--model", "unet_early_fusion", "--init", init)
    assert medseg("ivd", "train", spines, "--out", tmp_path / "x", *args, *other) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and "ivdnet.safetensors" in message, message


def test_train_validates_on_val_data_and_trains_on_every_data_subject(
    spines: Path, tmp_path: Path, medseg: Medseg
) -> None:
    """``--val-data``: the checkpoint is picked on those subjects and every DATA_ROOT subject is
    trained on, the same split whatever --seed (a fine-tuning stage with another seed cannot
    validate on subjects an earlier stage trained on)."""
    import shutil

    from convsuite.core_ops.hub import model_config
    from convsuite.core_ops.io import read_card
    from convsuite.medseg.ivd_train import load_slices

    val = tmp_path / "val"
    shutil.copytree(spines / "01", val / "01")  # a copy: another folder, so not refused
    pixel_mm = model_config("ivdnet", "tiny").pixel_mm
    n_train = len(load_slices(spines, pixel_mm, progress=False).images)
    n_val = len(load_slices(val, pixel_mm, progress=False).images)
    args = ("--preset", "tiny", "--max-steps", "1", "--batch-size", "2", "--accelerator", "cpu")
    texts = []
    for seed in ("0", "3"):
        out = tmp_path / f"seed{seed}"
        assert (
            medseg("ivd", "train", spines, "--out", out, *args, "--val-data", val, "--seed", seed)
            == 0
        )
        texts.append(read_card(out / "ivdnet.json").training_data)
    assert texts[0].startswith(
        f"{n_train} sagittal slices of 2 subjects of {spines} (validation: {n_val} slices of 1 "
        f"subjects of {val}); lr "
    ), texts[0]
    assert texts[0] == texts[1]


def test_train_refuses_val_data_that_shares_a_subject_with_data_root(
    spines: Path, tmp_path: Path, medseg: Medseg, capsys
) -> None:  # noqa: ANN001
    """A --val-data subject folder that is also a DATA_ROOT one (here through a link, compared
    resolved) would pick the checkpoint on trained data: one line, exit 2, nothing written."""
    linked = tmp_path / "val"
    linked.mkdir()
    (linked / "01").symlink_to(spines / "01", target_is_directory=True)
    out = tmp_path / "run"
    args = ("--preset", "tiny", "--max-steps", "1", "--accelerator", "cpu", "--out", out)
    capsys.readouterr()
    assert medseg("ivd", "train", spines, "--val-data", linked, *args) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1, message
    assert f"shares 1 subject folder(s) with the training data {spines} (01)" in message, message
    assert not out.exists()


@pytest.mark.parametrize("command", ["simulate", "train", "segment", "evaluate"])
def test_help_has_an_example(command: str, medseg: Medseg, capsys) -> None:  # noqa: ANN001
    assert medseg("ivd", command, "--help") == 0
    assert "Example: medseg ivd" in capsys.readouterr().out
