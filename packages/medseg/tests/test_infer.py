"""The inference pipeline: radiographs of any size and aspect in, contours in their pixels out;
the same result for an image alone or among others."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convsuite.medseg import (
    HybridGNet,
    PhantomOptions,
    UNetBaseline,
    segment,
    segment_image,
    segment_pixels,
    simulate_phantoms,
)


@pytest.fixture(scope="module")
def net() -> HybridGNet:
    return HybridGNet.from_pretrained("hybridgnet_small")


@pytest.fixture(scope="module")
def radiographs() -> list[np.ndarray]:
    """Phantoms of three sizes and aspects (one padded wide, one cropped tall)."""
    phantoms = [p.image for p in simulate_phantoms(3, 21, PhantomOptions(size=192))]
    return [phantoms[0], np.pad(phantoms[1], ((0, 0), (30, 10))), phantoms[2][:, 20:170]]


def test_segment_batched_and_one_by_one_agree(
    net: HybridGNet, radiographs: list[np.ndarray]
) -> None:
    together = list(segment(net, radiographs, batch_size=3))
    alone = [segment_image(net, image) for image in radiographs]
    for image, a, b in zip(radiographs, together, alone, strict=True):
        assert set(a.landmarks) == {"RL", "LL", "H"} and a.uncertainty is None
        for organ in a.landmarks:
            np.testing.assert_allclose(a.landmarks[organ], b.landmarks[organ], atol=1e-3)
            assert a.masks[organ].shape == image.shape
            np.testing.assert_array_equal(a.masks[organ], b.masks[organ])
        assert a.cardiothoracic_ratio == pytest.approx(b.cardiothoracic_ratio, abs=1e-6)


def test_landmarks_come_back_in_the_input_pixels(
    net: HybridGNet, radiographs: list[np.ndarray]
) -> None:
    """Padding the image on the left moves every landmark right by the padding."""
    image = radiographs[0]
    shifted = np.pad(image, ((0, 0), (24, 0)))
    plain, moved = segment_image(net, image), segment_image(net, shifted)
    for organ in plain.landmarks:
        np.testing.assert_allclose(
            moved.landmarks[organ] - [24, 0], plain.landmarks[organ], atol=0.5
        )


def test_latent_samples_give_a_seeded_uncertainty(
    net: HybridGNet, radiographs: list[np.ndarray]
) -> None:
    def draw() -> dict[str, np.ndarray]:
        generator = torch.Generator().manual_seed(3)
        return segment_image(net, radiographs[0], samples=4, generator=generator).uncertainty

    first, again = draw(), draw()
    for organ, spread in first.items():
        assert spread.shape == (len(segment_image(net, radiographs[0]).landmarks[organ]),)
        assert (spread > 0).all()
        np.testing.assert_array_equal(spread, again[organ])


def test_segment_pixels_gives_masks_in_the_input_pixels(radiographs: list[np.ndarray]) -> None:
    unet = UNetBaseline.from_pretrained("unet_small")
    masks = segment_pixels(unet, radiographs)
    for image, organ_masks in zip(radiographs, masks, strict=True):
        assert list(organ_masks) == ["RL", "LL", "H"]
        assert all(
            m.shape == image.shape and m.dtype == bool and m.any() for m in organ_masks.values()
        )
