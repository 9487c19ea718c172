"""The bundled IVD-Net weights, bf16 against fp32, the IVD demo and the IVD quickstart notebook."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from convsuite_dev.testing import assert_figures_shown, execute_notebook, notebook_text

from convsuite.core_ops.precision import bf16_layers, inference_mode, prepare_for_inference
from convsuite.medseg import IVDNet
from convsuite.medseg.data.spine_phantom import SpineOptions, SpinePhantom, simulate_spine
from convsuite.medseg.demo import run_ivd
from convsuite.medseg.ivd_evaluate import score_subject

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart_ivd.ipynb"


@pytest.fixture(scope="module")
def held_out() -> SpinePhantom:
    """A phantom from a seed no recipe used, stored in a random axis order; 18 sagittal slices of
    4 mm at 2.5 mm in-plane (the weights' pixel size; IVDM3Seg's 36 x 256 x 256 is the same
    field of view, a quarter of the work)."""
    return simulate_spine(4242, SpineOptions(shape=(18, 128, 128), spacing=(4.0, 2.5, 2.5)))


@pytest.fixture(scope="module")
def net() -> IVDNet:
    torch.set_num_threads(1)
    return IVDNet.from_pretrained()


def test_bundled_ivdnet_segments_a_held_out_phantom(net: IVDNet, held_out: SpinePhantom) -> None:
    assert net.card is not None and "phantom" in net.card.intended_use.lower()
    assert net.config.ngf == 4 and net.config.pixel_mm == 2.5
    labels, discs = net.segment(held_out.image, held_out.affine)
    assert labels.shape == held_out.labels.shape
    score = score_subject("held_out", labels, held_out.labels, held_out.affine)
    assert score.dice > 0.8, score.to_json()
    assert score.found >= 6, score.to_json()
    heights = [d.centroid_mm[2] for d in discs]
    assert heights == sorted(heights, reverse=True)


def test_bf16_disc_probability_stays_close_to_fp32(net: IVDNet, held_out: SpinePhantom) -> None:
    fp32 = net.disc_probability(held_out.image, held_out.affine)
    prepared = prepare_for_inference(copy.deepcopy(net), "bf16")
    converted = bf16_layers(prepared)  # every conv, the 4-channel first level's too
    assert "encoders.0.0.conv_in.0" in converted and "head" in converted
    with inference_mode("bf16"):
        bf16 = prepared.disc_probability(held_out.image, held_out.affine)
    assert np.abs(bf16 - fp32).mean() < 0.01
    a, b = fp32 > 0.5, bf16 > 0.5
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.97
    labels, _ = net.segment(held_out.image, held_out.affine, precision="bf16")
    assert labels.shape == held_out.labels.shape


@pytest.mark.slow
def test_ivd_demo_scores_both_methods(tmp_path: Path) -> None:
    """The demo on one phantom of the held-out fixture's grid (the same anatomy as IVDM3Seg's
    36 x 256 x 256, an eighth of the voxels)."""
    result = run_ivd(tmp_path, subjects=1, shape=(18, 128, 128), spacing=(4.0, 2.5, 2.5))
    assert set(result.summary) == {"IVD-Net", "early-fusion U-Net"}
    assert result.summary["IVD-Net"]["dice"] > 0.7
    assert [f.name for f in result.figures] == ["ivd_overlay.png", "ivd_methods.png"]
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in result.figures)


@pytest.mark.slow
def test_ivd_quickstart_notebook_runs_and_shows_its_figure(tmp_path: Path) -> None:
    notebook = execute_notebook(NOTEBOOK, tmp_path)
    printed = notebook_text(notebook)
    assert "disc 1: centroid" in printed and "Dice" in printed
    assert assert_figures_shown(notebook) == 1
