"""The bundled weights, the demo and the quickstart notebook: they load, they segment phantoms well."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from convsuite_dev.testing import assert_figures_shown, execute_notebook, notebook_text

from convsuite.medseg import (
    HybridGNet,
    PhantomOptions,
    UNetBaseline,
    segment,
    segment_pixels,
    simulate_phantoms,
)
from convsuite.medseg.data.masks import contour_to_mask
from convsuite.medseg.demo import run as run_demo
from convsuite.medseg.metrics import dice, is_topologically_valid

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


def _held_out(n: int, occlusion: float = 0.0) -> tuple[list[np.ndarray], list[dict]]:
    phantoms = list(simulate_phantoms(n, 99, PhantomOptions(size=256, occlusion=occlusion)))
    return [p.image for p in phantoms], [p.landmarks for p in phantoms]


def _true_mask(truth: dict, organ: str, shape: tuple[int, int]) -> np.ndarray:
    return contour_to_mask(truth[organ], shape)


def test_bundled_hybridgnet_segments_held_out_phantoms() -> None:
    net = HybridGNet.from_pretrained()
    assert net.config.image_size == 256 and "phantom" in net.card.intended_use.lower()
    images, truths = _held_out(8)
    results = list(segment(net, images))
    for organ, floor in (("RL", 0.93), ("LL", 0.93), ("H", 0.88)):
        scores = [
            dice(r.masks[organ], _true_mask(t, organ, i.shape))
            for r, t, i in zip(results, truths, images, strict=True)
        ]
        assert np.mean(scores) > floor, (organ, scores)


def test_bundled_hybridgnet_keeps_valid_organs_under_occlusion() -> None:
    net = HybridGNet.from_pretrained()
    images, _ = _held_out(8, occlusion=0.3)
    for result in segment(net, images):
        assert all(is_topologically_valid(mask) for mask in result.masks.values())


def test_bundled_unet_baseline_segments_held_out_phantoms() -> None:
    unet = UNetBaseline.from_pretrained("unet_small")
    images, truths = _held_out(4)
    masks = segment_pixels(unet, images)
    scores = [
        dice(m["LL"], _true_mask(t, "LL", i.shape))
        for m, t, i in zip(masks, truths, images, strict=True)
    ]
    assert np.mean(scores) > 0.9, scores


@pytest.mark.slow
def test_demo_compares_both_methods_clean_and_occluded(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    assert set(result.summary) == {
        f"{m} {c}" for m in ("HybridGNet", "UNet") for c in ("clean", "occluded")
    }
    assert result.summary["HybridGNet occluded"]["valid_H"] == 1.0
    assert result.summary["HybridGNet clean"]["dice_LL"] > 0.9
    assert [f.name for f in result.figures] == ["occlusion_comparison.png"]
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in result.figures)


@pytest.mark.slow
def test_quickstart_notebook_runs_and_shows_its_figures(tmp_path: Path) -> None:
    notebook = execute_notebook(NOTEBOOK, tmp_path)
    printed = notebook_text(notebook)
    assert "Dice" in printed and "phantom" in printed.lower()
    assert assert_figures_shown(notebook) == 1
