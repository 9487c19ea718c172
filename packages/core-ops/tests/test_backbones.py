"""Backbones: published parameter counts, every mixer, re-parameterization, learning, Grad-CAM."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_learns

from convsuite.core_ops.backbones import create_backbone, list_backbones
from convsuite.core_ops.explain import grad_cam
from convsuite.core_ops.layers import MIXERS, DilatedReparamConv2d, reparameterize_model


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("name", "published"),
    [("convnext_tiny", 28.6e6), ("convnext_atto", 3.7e6)],  # Liu et al. 2022 Table; timm atto
)
def test_convnext_parameter_counts_match_published(name, published):
    assert abs(_count(create_backbone(name)) - published) <= 0.01 * published


def test_unireplknet_a_parameter_count_near_published():
    # Ding et al., CVPR 2024, Table: UniRepLKNet-A 4.4M parameters (training-time form is larger).
    count = _count(reparameterize_model(create_backbone("unireplknet_a")))
    assert abs(count - 4.4e6) <= 0.06 * 4.4e6


@pytest.mark.parametrize("mixer", MIXERS)
def test_convnext_every_mixer_classifies(mixer):
    model = create_backbone("convnext_test", mixer=mixer, num_classes=5)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_registry_lists_presets_and_rejects_unknown():
    assert {"convnext_atto", "unireplknet_a", "unet2d_small", "unet3d_small"} <= set(
        list_backbones()
    )
    with pytest.raises((KeyError, ValueError)):
        create_backbone("no_such_net")


def test_unireplknet_reparameterization_keeps_outputs():
    torch.manual_seed(0)
    model = create_backbone("unireplknet_test", num_classes=3)
    blocks = [m for m in model.modules() if isinstance(m, DilatedReparamConv2d)]
    assert blocks, "the test preset must contain dilated re-param blocks"
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(4, 3, 64, 64) * 2 + 0.5)  # moves BN running statistics
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    before = model(x)
    reparameterize_model(model)
    assert all(block.is_reparameterized for block in blocks)
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-4 * before.abs().max().item())


def _bright_square_data(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 32, 32, generator=g) * 0.3
    y = torch.randint(0, 2, (n,), generator=g)
    corners = torch.randint(4, 20, (n, 2), generator=g)
    for i in range(n):
        if y[i]:
            r, c = corners[i].tolist()
            x[i, :, r : r + 8, c : c + 8] += 2.0
    return x, y, corners


@pytest.mark.parametrize("mixer", ["dense", "dcls"])
def test_convnext_learns_bright_square_detection(mixer):
    torch.manual_seed(0)
    x, y, _ = _bright_square_data(32, 0)
    model = create_backbone("convnext_test", mixer=mixer, num_classes=2)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in (0, 16)]
    assert_learns(model, batches, F.cross_entropy, epochs=15, lr=2e-3)


@pytest.mark.parametrize(
    ("name", "shape"), [("unet2d_small", (2, 1, 32, 32)), ("unet3d_small", (2, 1, 16, 16, 16))]
)
def test_unet_learns_a_threshold_segmentation(name, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape)
    y = (x[:, 0] > 0.5).long()
    model = create_backbone(name)
    assert model(x).shape == (shape[0], 2, *shape[2:])
    assert_learns(model, [(x, y)], F.cross_entropy, epochs=25, lr=1e-2)


def test_grad_cam_equals_the_papers_formula_on_a_trained_classifier():
    """Selvaraju et al. Eq. 1-2: alpha_k = mean gradient of the class score over layer map k,
    map = ReLU(sum_k alpha_k A_k), here min-max normalized per sample like MONAI."""
    torch.manual_seed(0)
    x, y, _ = _bright_square_data(64, 1)
    nn = torch.nn
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 2),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(10):
        for i in range(0, 64, 16):
            optimizer.zero_grad()
            F.cross_entropy(model(x[i : i + 16]), y[i : i + 16]).backward()
            optimizer.step()
    model.eval()
    sample = x[torch.nonzero(y).flatten()[:4]]
    maps = grad_cam(model, sample, model[3], 1)
    activations = model[:4](sample).detach().requires_grad_()
    score = model[4:](activations)[:, 1].sum()
    (grads,) = torch.autograd.grad(score, activations)
    cam = F.relu((grads.mean((2, 3), keepdim=True) * activations.detach()).sum(1, keepdim=True))
    low = cam.flatten(1).min(1).values.view(-1, 1, 1, 1)
    high = cam.flatten(1).max(1).values.view(-1, 1, 1, 1)
    expected = (cam - low) / (high - low)
    assert maps.shape == (4, 1, 32, 32)
    torch.testing.assert_close(maps, expected, rtol=0, atol=1e-4)
    assert expected.std() > 0.05  # not a constant map: the comparison means something


def test_grad_cam_on_a_segmenter_with_a_mask_target():
    model = create_backbone("unet2d_small").eval()
    x = torch.randn(2, 1, 32, 32)
    mask = torch.zeros(1, 32, 32)
    mask[:, 8:16, 8:16] = 1
    layer = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)][-2]
    maps = grad_cam(model, x, layer, (1, mask))
    assert maps.shape == (2, 1, 32, 32)
    assert maps.min() >= 0 and maps.max() <= 1
