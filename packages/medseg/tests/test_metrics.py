"""Metrics: Dice/Hausdorff via MONAI, landmark MSE at the paper's scale, topology, CTR."""

from __future__ import annotations

import numpy as np
import pytest

from convsuite.medseg.metrics import (
    cardiothoracic_ratio,
    dice,
    hausdorff_mm,
    is_simple_polygon,
    is_topologically_valid,
    landmark_mse,
)


def _square(shape: tuple[int, int], top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[top : top + side, left : left + side] = True
    return mask


def test_dice_and_hausdorff_of_shifted_squares() -> None:
    a = _square((64, 64), 10, 10, 20)
    b = _square((64, 64), 10, 14, 20)  # shifted 4 px right
    assert dice(a, b) == pytest.approx(2 * 16 * 20 / 800)
    assert hausdorff_mm(a, b, pixel_spacing_mm=0.5) == pytest.approx(2.0, abs=0.01)
    assert dice(a, a) == 1.0 and hausdorff_mm(a, a, 0.5) == 0.0


def test_landmark_mse_is_per_coordinate_at_1024_pixels() -> None:
    truth = np.zeros((10, 2))
    predicted = truth + [1.0, 0.0]  # 1 px off in x at 256 px = 4 px at 1024
    assert landmark_mse(predicted, truth, image_size=256) == pytest.approx(16 / 2)


def test_topology_detects_holes_and_fragments() -> None:
    organ = _square((40, 40), 5, 5, 20)
    assert is_topologically_valid(organ)
    holed = organ.copy()
    holed[12:15, 12:15] = False
    assert not is_topologically_valid(holed)
    assert not is_topologically_valid(organ | _square((40, 40), 30, 30, 5))


def test_simple_polygon_detects_self_intersection() -> None:
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    bow_tie = np.array([[0, 0], [1, 1], [1, 0], [0, 1]], float)
    assert is_simple_polygon(square) and not is_simple_polygon(bow_tie)


def test_cardiothoracic_ratio() -> None:
    rl = np.array([[10.0, 0], [40, 0]])
    ll = np.array([[60.0, 0], [110, 0]])
    heart = np.array([[40.0, 0], [90, 0]])
    assert cardiothoracic_ratio({"RL": rl, "LL": ll, "H": heart}) == pytest.approx(0.5)
