"""IVD-Net's architecture against the reference code, the fusion baselines, learning, export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from convsuite_dev.testing import assert_learns
from torch.export import Dim

from convsuite.core_ops.hub import create_model, list_presets
from convsuite.medseg.ivd_train import IVDModule, load_slices

REFERENCE_PARAMETERS = 54_313_954
"""``IVD_Net_asym(1, 2, 32)`` of josedolz/IVD-Net (``IVD_Net.py``), counted with torch."""


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_paper_preset_has_the_reference_size_and_dense_inputs() -> None:
    net = create_model("ivdnet", preset="paper")
    count = sum(p.numel() for p in net.parameters())
    assert abs(count - REFERENCE_PARAMETERS) <= 0.02 * REFERENCE_PARAMETERS
    assert count == REFERENCE_PARAMETERS  # same layers, same widths: exactly the same
    inputs = [block.in_channels for block in net.encoders[0]] + [net.bridge.in_channels]
    assert inputs == [1, 128, 384, 896, 1920]
    assert [block.out_channels for block in net.encoders[3]] == [32, 64, 128, 256]
    assert net.bridge.out_channels == 512 and len(net.encoders) == 4
    assert set(list_presets("ivdnet")) == {"paper", "small", "tiny"}


@pytest.mark.parametrize("name", ["ivdnet", "unet_early_fusion", "unet_late_fusion"])
def test_tiny_networks_map_four_modalities_to_two_classes(name: str) -> None:
    net = create_model(name, preset="tiny").eval()
    with torch.no_grad():
        out = net(torch.rand(2, 4, 64, 48))
    assert out.shape == (2, 2, 64, 48) and torch.isfinite(out).all()


def test_each_path_reads_its_own_modality() -> None:
    """Changing one modality changes that path's first-level output only."""
    torch.manual_seed(0)
    net = create_model("ivdnet", preset="tiny").eval()
    x = torch.rand(1, 4, 32, 32)
    y = x.clone()
    y[:, 2] += 1
    with torch.no_grad():
        first = [net.encoders[p][0](x[:, p : p + 1]) for p in range(4)]
        second = [net.encoders[p][0](y[:, p : p + 1]) for p in range(4)]
    changed = [not torch.allclose(a, b) for a, b in zip(first, second, strict=True)]
    assert changed == [False, False, True, False]


def test_tiny_ivdnet_learns_discs(spines: Path) -> None:
    """16 Adam steps with Dice + CE on 8 slices (80 mm antero-posterior crops around the spine):
    the loss falls and the disc probability separates discs from the rest. Probabilities are read
    with batch statistics (train-mode BatchNorm): 16 steps leave the running statistics far from
    converged (momentum 0.1), which is a matter of training length, not of learning."""
    torch.manual_seed(0)
    data = load_slices(spines, pixel_mm=2.5, progress=False)
    keep = torch.nonzero(data.labels.flatten(1).any(1)).flatten()[:8].tolist()
    starts = [int(data.spine[i]) - 16 for i in keep]
    pairs = list(zip(keep, starts, strict=True))
    images = torch.stack([data.images[i, :, s : s + 32].float() for i, s in pairs])
    labels = torch.stack([data.labels[i, s : s + 32].long() for i, s in pairs])
    batches = [(images[i : i + 4], labels[i : i + 4]) for i in (0, 4)]
    net = create_model("ivdnet", preset="tiny")
    with torch.no_grad():
        before = net(images).softmax(1)[:, 1]
    assert_learns(net, batches, IVDModule(net, loss="dicece").loss, epochs=8, lr=1e-2, min_drop=0.8)
    with torch.no_grad():
        disc = net.train()(images).softmax(1)[:, 1]
    truth = labels.bool()
    ratio = disc[truth].mean() / disc[~truth].mean()
    assert ratio > 1.5 * before[truth].mean() / before[~truth].mean(), ratio


def test_tiny_ivdnet_exports_with_a_dynamic_batch() -> None:
    torch.manual_seed(0)
    net = create_model("ivdnet", preset="tiny").eval()
    batch = Dim("batch", min=1, max=64)
    exported = torch.export.export(net, (torch.rand(2, 4, 32, 32),), dynamic_shapes=({0: batch},))
    x = torch.rand(3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), net(x), rtol=1e-5, atol=1e-5)


def test_segment_refuses_bad_volumes() -> None:
    from convsuite.core_ops.errors import InputError

    net = create_model("ivdnet", preset="tiny").eval()
    with pytest.raises(InputError, match="must be"):
        net.segment(np.zeros((3, 4, 32, 32), np.float32))
    image = np.zeros((4, 4, 32, 32), np.float32)
    image[0, 0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        net.segment(image)
