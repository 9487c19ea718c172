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

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from convsuite.core_ops.hub import list_bundled
from convsuite.core_ops.io import CARD_VERSION
from convsuite.medseg import EarlyFusionUNet, HybridGNet, IVDNet, UNetBaseline

RECORDED = np.load(Path(__file__).parent / "data" / "bundled_outputs.npz")
WEIGHTS = Path(__file__).parents[1] / "src" / "convsuite" / "medseg" / "weights"


def _images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(2024)
    return torch.rand(2, 1, 256, 256, generator=generator, dtype=torch.float64)


def test_every_bundled_checkpoint_has_a_recording() -> None:
    assert list_bundled("convsuite.medseg") == sorted(RECORDED.files)


@torch.no_grad()
def test_bundled_hybridgnet_gives_the_recorded_landmarks() -> None:
    net = HybridGNet.from_pretrained("hybridgnet_small").double()
    landmarks = net(_images()).landmarks.numpy()
    np.testing.assert_allclose(landmarks, RECORDED["hybridgnet_small"], rtol=0, atol=1e-6)


@torch.no_grad()
def test_bundled_unet_gives_the_recorded_probabilities() -> None:
    net = UNetBaseline.from_pretrained("unet_small").double()
    probabilities = torch.sigmoid(net(_images()[:1, :, :128, :128]))[..., ::8, ::8].numpy()
    np.testing.assert_allclose(probabilities, RECORDED["unet_small"], rtol=0, atol=1e-6)


@torch.no_grad()
@pytest.mark.parametrize(
    ("network", "name"), [(IVDNet, "ivdnet_small"), (EarlyFusionUNet, "unet_early_fusion_small")]
)
def test_bundled_disc_networks_give_the_recorded_probabilities(network: type, name: str) -> None:
    """Recorded when the weights were bundled (commit dd2bae0) and re-recorded when the recipe
    retrained them (issue 14, second part: the loss on the scan's grid; ``ivdnet_small`` again
    after its two fine-tuning stages on turned slices, third part; and after its fourth stage on
    tilted phantoms with more degenerated discs, session 5): the disc probability of
    ``torch.rand(1, 4, 64, 64)`` (generator seed 2024, float64) at every 4th pixel."""
    generator = torch.Generator().manual_seed(2024)
    x = torch.rand(1, 4, 64, 64, generator=generator, dtype=torch.float64)
    disc = network.from_pretrained(name).double()(x).softmax(1)[:, 1, ::4, ::4].numpy()
    np.testing.assert_allclose(disc, RECORDED[name], rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("network", "name"), [(HybridGNet, "hybridgnet_small"), (UNetBaseline, "unet_small")]
)
def test_bundled_cards_say_what_the_weights_expect_and_give(network: type, name: str) -> None:
    """Card version 2: image size and organs under ``inputs``, agreeing with the config; only
    reached figures under ``metrics``."""
    net = network.from_pretrained(name)
    card = net.card
    raw = json.loads((WEIGHTS / f"{name}.json").read_text())
    assert raw["card_version"] == CARD_VERSION == card.card_version
    assert card.architecture == network.__name__
    assert card.inputs["image_size"] == net.config.image_size == 256
    assert tuple(card.inputs["organs"]) == net.config.organs == ("RL", "LL", "H")
    assert card.outputs and not (set(card.metrics) & {"image_size", "organs", "n_organs"})
    assert set(card.metrics) <= {
        "train_seconds",
        "steps",
        "planned_steps",
        "val_mse_px2",
        "val_dice",
    }
