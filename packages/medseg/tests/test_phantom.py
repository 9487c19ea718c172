"""The chest-radiograph phantom simulator: determinism, anatomy, landmarks, image, options."""

from __future__ import annotations

import numpy as np
import pytest

from convsuite.medseg.data.masks import contour_to_mask, signed_area
from convsuite.medseg.data.phantom import (
    ORGAN_SIZES,
    PhantomOptions,
    _sample_anatomy,  # the dense contours behind a phantom
    organ_masks,
    simulate_phantom,
    simulate_phantoms,
)

SIZE = 256
OPTIONS = PhantomOptions(size=SIZE, clavicles=True)


@pytest.fixture(scope="module")
def phantoms() -> list:
    return list(simulate_phantoms(30, seed=11, options=OPTIONS))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


def _is_simple(points: np.ndarray) -> bool:
    """No two non-adjacent edges of the closed polygon intersect."""
    start, end = points, np.roll(points, -1, axis=0)
    n = len(points)

    def orientation(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.sign(
            (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1])
            - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
        )

    p, q = start[:, None], end[:, None]
    r, s = start[None, :], end[None, :]
    crossing = (orientation(p, q, r) != orientation(p, q, s)) & (
        orientation(r, s, p) != orientation(r, s, q)
    )
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    adjacent = (np.abs(i - j) <= 1) | (np.abs(i - j) == n - 1)
    return not (crossing & ~adjacent).any()


def test_same_seed_same_phantoms_other_seed_differs() -> None:
    first, again = (list(simulate_phantoms(2, seed=3, options=OPTIONS)) for _ in range(2))
    other = next(simulate_phantoms(1, seed=4, options=OPTIONS))
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.image, b.image)
        for organ in a.landmarks:
            np.testing.assert_array_equal(a.landmarks[organ], b.landmarks[organ])
    assert not np.allclose(first[0].image, other.image)
    assert not np.allclose(first[0].landmarks["RL"], other.landmarks["RL"])


def test_image_is_float32_in_unit_range(phantoms: list) -> None:
    for phantom in phantoms[:5]:
        assert phantom.image.shape == (SIZE, SIZE)
        assert phantom.image.dtype == np.float32
        assert phantom.image.min() >= 0.0 and phantom.image.max() <= 1.0
        assert not phantom.occlusion_mask.any()


def test_landmarks_counts_margin_orientation_and_simple(phantoms: list) -> None:
    for phantom in phantoms:
        assert set(phantom.landmarks) == set(ORGAN_SIZES)
        for organ, points in phantom.landmarks.items():
            assert points.shape == (ORGAN_SIZES[organ], 2) and points.dtype == np.float64
            assert points.min() >= 0.02 * SIZE and points.max() <= 0.98 * SIZE
            assert signed_area(points) > 0, organ  # counter-clockwise on screen
            assert _is_simple(points), organ


def test_anatomy_left_right_and_heart_position(phantoms: list) -> None:
    for phantom in phantoms:
        right, left, heart = (phantom.landmarks[organ] for organ in ("RL", "LL", "H"))
        assert right[:, 0].mean() < heart[:, 0].mean() < left[:, 0].mean()
        assert heart[:, 1].mean() > right[:, 1].mean()  # heart in the lower half of the chest
        assert heart[:, 0].mean() > 0.5 * (right[:, 0].min() + left[:, 0].max())  # image right


def test_lungs_darker_than_heart_and_soft_tissue(phantoms: list) -> None:
    for phantom in phantoms[:10]:
        masks = organ_masks(phantom)
        lungs = phantom.image[masks["RL"] | masks["LL"]].mean()
        heart = phantom.image[masks["H"] & ~(masks["RL"] | masks["LL"])].mean()
        below = int(max(phantom.landmarks[o][:, 1].max() for o in ("RL", "LL")) + 0.05 * SIZE)
        centre = int(phantom.landmarks["H"][:, 0].mean())
        abdomen = phantom.image[below : below + SIZE // 10, centre - 20 : centre + 20].mean()
        assert lungs < heart and lungs < abdomen
        assert 0.1 < lungs < 0.5 and 0.45 < abdomen < 0.95


def test_landmark_polygons_match_rendered_contours(phantoms: list) -> None:
    children = np.random.SeedSequence(11).spawn(30)
    for phantom, child in zip(phantoms[:10], children[:10], strict=True):
        contours = _sample_anatomy(np.random.default_rng(child), SIZE).image_contours()
        masks = organ_masks(phantom)
        for organ, mask in masks.items():
            thin = organ in ("RCLA", "LCLA")  # 23 points around a thin band cut its tips a little
            expected = 0.95 if thin else 0.98
            assert _dice(mask, contour_to_mask(contours[organ], mask.shape)) >= expected, organ
        for lung in ("RL", "LL"):
            assert 0.04 <= masks[lung].mean() <= 0.2  # the left lung loses its cardiac notch


def test_clavicles_only_on_request() -> None:
    phantom = simulate_phantom(np.random.default_rng(0), PhantomOptions(size=SIZE))
    assert set(phantom.landmarks) == {"RL", "LL", "H"}


@pytest.mark.parametrize("fraction", [0.1, 0.3])
def test_occlusion_covers_fraction_of_lungs_and_keeps_anatomy(fraction: float) -> None:
    clean = list(simulate_phantoms(4, seed=5, options=PhantomOptions(size=SIZE)))
    occluded = simulate_phantoms(4, seed=5, options=PhantomOptions(size=SIZE, occlusion=fraction))
    for reference, phantom in zip(clean, occluded, strict=True):
        masks = organ_masks(phantom)
        lungs = masks["RL"] | masks["LL"]
        covered = (phantom.occlusion_mask & lungs).sum() / lungs.sum()
        assert abs(covered - fraction) <= 0.05
        np.testing.assert_array_equal(reference.landmarks["LL"], phantom.landmarks["LL"])
        outside = ~phantom.occlusion_mask
        np.testing.assert_array_equal(reference.image[outside], phantom.image[outside])


def test_domain_shift_changes_intensities_only() -> None:
    options = PhantomOptions(size=SIZE, domain_shift=True)
    clean = next(simulate_phantoms(1, seed=9, options=PhantomOptions(size=SIZE)))
    shifted = next(simulate_phantoms(1, seed=9, options=options))
    assert shifted.image.dtype == np.float32
    assert 0.0 <= shifted.image.min() and shifted.image.max() <= 1.0
    np.testing.assert_array_equal(clean.landmarks["H"], shifted.landmarks["H"])
    assert not np.allclose(clean.image, shifted.image)


def test_cardiothoracic_ratio_spans_normal_and_enlarged_hearts() -> None:
    ratios = []
    for phantom in simulate_phantoms(50, seed=1, options=PhantomOptions(size=SIZE)):
        right, left, heart = (phantom.landmarks[organ] for organ in ("RL", "LL", "H"))
        ratios.append(np.ptp(heart[:, 0]) / (left[:, 0].max() - right[:, 0].min()))
    assert min(ratios) <= 0.42 and max(ratios) >= 0.52
    assert 0.3 < min(ratios) and max(ratios) < 0.65
