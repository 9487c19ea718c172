"""Every bundled checkpoint gives the outputs it gave before the move onto core-ops' hub.

``data/bundled_outputs.npz`` was written with the code of commit 776ae41 (before the refactor), in
float64 so that the thread count does not matter, by::

    generator = torch.Generator().manual_seed(2024)
    images = torch.rand(2, 1, 256, 256, generator=generator, dtype=torch.float64)
    hybridgnet = HybridGNet.from_pretrained().double()
    unet = load_pixel_baseline(bundled_weights(UNET_SMALL))[0].double()
    with torch.no_grad():
        landmarks = hybridgnet(images).landmarks                                  # (2, 120, 2)
        probabilities = torch.sigmoid(unet(images[:1, :, :128, :128]))[..., ::8, ::8]  # (1, 3, 16, 16)
    np.savez_compressed(path, hybridgnet_small=landmarks, unet_small=probabilities)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from convsuite.medseg.bundled import UNET_SMALL, bundled_weights
from convsuite.medseg.evaluate import load_pixel_baseline
from convsuite.medseg.models import HybridGNet

RECORDED = np.load(Path(__file__).parent / "data" / "bundled_outputs.npz")


def _images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(2024)
    return torch.rand(2, 1, 256, 256, generator=generator, dtype=torch.float64)


@torch.no_grad()
def test_bundled_hybridgnet_gives_the_recorded_landmarks() -> None:
    net = HybridGNet.from_pretrained().double()
    landmarks = net(_images()).landmarks.numpy()
    np.testing.assert_allclose(landmarks, RECORDED["hybridgnet_small"], rtol=0, atol=1e-6)


@torch.no_grad()
def test_bundled_unet_gives_the_recorded_probabilities() -> None:
    net = load_pixel_baseline(bundled_weights(UNET_SMALL))[0].double()
    probabilities = torch.sigmoid(net(_images()[:1, :, :128, :128]))[..., ::8, ::8].numpy()
    np.testing.assert_allclose(probabilities, RECORDED["unet_small"], rtol=0, atol=1e-6)
