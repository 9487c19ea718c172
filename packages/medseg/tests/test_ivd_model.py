"""IVD-Net's architecture against the reference code, the fusion baselines, learning, export."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_learns
from torch.export import Dim

from convsuite.core_ops.hub import create_model, list_presets
from convsuite.medseg.ivd_train import LABEL_ZOOM, IVDModule, _rotate, label_grid, load_slices
from convsuite.medseg.models.ivdnet import _pool
from convsuite.medseg.models.volume_segmenter import (
    IVDM3SEG_AFFINE,
    VolumeSegmenter,
    _shift,
    scan_slices,
    subpixel_offsets,
)

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


@pytest.mark.parametrize("size", [(16, 12), (9, 7)])
def test_pool_equals_torch_max_pool_in_both_precisions_and_layouts(size: tuple[int, int]) -> None:

    torch.manual_seed(0)
    x = torch.randn(2, 5, *size)
    x[0, 1, 2, 3] = float("nan")
    for dtype, layout in [
        (torch.float32, torch.contiguous_format),
        (torch.bfloat16, torch.channels_last),
    ]:
        v = x.to(dtype, memory_format=layout)
        got = _pool(v)
        torch.testing.assert_close(got, F.max_pool2d(v, 2), rtol=0, atol=0, equal_nan=True)
        assert got.dtype == dtype and got.is_contiguous(memory_format=layout)


@pytest.mark.parametrize("size", [(16, 12), (9, 7)])
def test_pool_gradient_equals_torch_max_pool_without_ties(size: tuple[int, int]) -> None:

    torch.manual_seed(0)
    count = 2 * 5 * size[0] * size[1]
    x = torch.randperm(count).reshape(2, 5, *size).float()  # distinct values: no ties
    upstream = torch.randn(2, 5, size[0] // 2, size[1] // 2)
    grads = []
    for pool in (_pool, lambda v: F.max_pool2d(v, 2)):
        v = x.clone().requires_grad_()
        pool(v).backward(upstream)
        grads.append(v.grad)
    assert grads[0].count_nonzero() == upstream.numel()  # one element per window
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


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
    z = LABEL_ZOOM  # labels on a grid twice as fine: the loss upsamples the logits
    labels = torch.stack([data.labels[i, z * s : z * (s + 32)].long() for i, s in pairs])
    assert labels.shape[-2:] == (z * images.shape[-2], z * images.shape[-1])
    batches = [(images[i : i + 4], labels[i : i + 4]) for i in (0, 4)]
    net = create_model("ivdnet", preset="tiny")
    with torch.no_grad():
        before = IVDModule.upsampled(net(images), labels).softmax(1)[:, 1]
    assert_learns(net, batches, IVDModule(net, loss="dicece").loss, epochs=8, lr=1e-2, min_drop=0.8)
    with torch.no_grad():
        disc = IVDModule.upsampled(net.train()(images), labels).softmax(1)[:, 1]
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


class _PointwiseNet(torch.nn.Module, VolumeSegmenter):
    """A shift-equivariant toy disc network at 2.5 mm: logits (0, fat - 0.3) for every pixel."""

    def __init__(self) -> None:
        super().__init__()
        self.config = SimpleNamespace(pixel_mm=2.5, modalities=("fat", "inn", "opp", "wat"))
        self.head = torch.nn.Conv2d(4, 2, 1)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.weight[1, 0] = 8.0
            self.head.bias.copy_(torch.tensor([0.0, -8 * 0.3]))
        self.calls = 0  # forward calls: one per grid and batch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.head(x)


def test_subpixel_grids_agree_with_one_grid_on_a_shift_equivariant_toy() -> None:
    """1.25 mm slices, a pointwise network at 2.5 mm: on a linear ramp every grid (shifted by 0 or
    1 scan pixel per axis, brought back and moved back) gives the same interior probability as
    the unshifted grid, so the 4 agree with it; a grid moved back the wrong way would not."""
    assert subpixel_offsets((1.25, 1.25), 2.5) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert subpixel_offsets((2.5, 1.25), 2.5) == [(0, 0), (0, 1)]
    assert subpixel_offsets((2.5, 2.5), 2.5) == [(0, 0)]
    assert subpixel_offsets((1.2, 1.2), 2.5) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    # the 1.25 mm preset is not coarser by a scan pixel on scans finer than it by < 1 pixel
    assert subpixel_offsets((1.2, 1.2), 1.25) == [(0, 0)]
    assert subpixel_offsets((1.2499999, 1.2499999), 1.25) == [(0, 0)]
    assert subpixel_offsets((1.1, 0.9), 1.25) == [(0, 0)]
    net = _PointwiseNet().eval()
    rows, cols = np.meshgrid(np.arange(48), np.arange(40), indexing="ij")
    image = np.ones((4, 3, 48, 40), np.float32)
    image[0] = 0.1 + 0.01 * rows + 0.005 * cols  # fat rises along both in-plane axes
    one = net.disc_probability(image, IVDM3SEG_AFFINE, shifts=False)
    assert net.calls == 1  # 3 slices: one batch on one grid
    four = net.disc_probability(image, IVDM3SEG_AFFINE, shifts=True)
    assert net.calls == 1 + 4  # the shifted grids were run, not skipped
    inner = (slice(None), slice(3, -3), slice(3, -3))
    np.testing.assert_allclose(four[inner], one[inner], atol=1e-5)
    slices, _ = scan_slices(image, IVDM3SEG_AFFINE)
    with torch.no_grad():  # moved by (1, 1), then "back" by (1, 1) more
        logits = net(F.avg_pool2d(_shift(slices, 1, 1), 2))
        wrong = _shift(F.interpolate(logits, size=(48, 40), mode="bilinear"), 1, 1)
    wrong = wrong.softmax(1)[:, 1].numpy()
    assert np.abs(wrong[inner] - one[inner]).max() > 0.01


@pytest.mark.parametrize(("shifts", "grids"), [(True, 4), (False, 1)])
def test_segment_passes_shifts_through(shifts: bool, grids: int) -> None:
    net = _PointwiseNet().eval()
    image = np.ones((4, 3, 48, 40), np.float32)
    net.segment(image, shifts=shifts, min_disc_mm3=0.0)
    assert net.calls == grids


def _dice(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


def test_training_labels_are_the_scans_own_on_a_grid_twice_as_fine(spines: Path) -> None:
    """2.5 mm network slices of 2.5 mm phantoms: labels at 1.25 mm, on the images' centred grid
    (each 2 x 2 block of the enlarged labels is one scan pixel: no half-pixel shift)."""
    data = load_slices(spines, pixel_mm=2.5, progress=False)
    assert data.labels.shape[-2:] == tuple(LABEL_ZOOM * n for n in data.images.shape[-2:])
    assert set(data.labels.unique().tolist()) == {0, 1}
    fine = data.labels.float()[:, None]
    coarse = F.avg_pool2d(fine, LABEL_ZOOM)
    assert ((coarse == 0) | (coarse == 1)).float().mean() > 0.99


def test_label_grid_keeps_the_labels_and_resamples_them_centred() -> None:
    """On their own grid the labels come back as they are. Discs (ellipses ~10 x 30 mm) on a
    1.25 mm grid taken to 2.5 mm and back as the segmenter takes logits back (bilinear, then
    threshold) keep Dice > 0.95 only when the coarse targets hold area shares; the hard labels
    of either grid lose more (the reason the loss is taken on the fine grid)."""
    rows, cols = torch.meshgrid(torch.arange(128.0), torch.arange(128.0), indexing="ij")
    fine = torch.zeros(3, 128, 128, dtype=torch.bool)
    for i, (r, c, tilt) in enumerate([(40.3, 60.7, 0.0), (70.1, 64.2, 0.3), (95.6, 58.9, -0.4)]):
        u = (rows - r) * np.cos(tilt) + (cols - c) * np.sin(tilt)
        v = -(rows - r) * np.sin(tilt) + (cols - c) * np.cos(tilt)
        fine[i] = (u / 4.1) ** 2 + (v / 12.3) ** 2 <= 1
    np.testing.assert_array_equal(label_grid(fine.numpy(), (128, 128)), fine.to(torch.uint8))
    up = label_grid(fine.numpy(), (256, 256)).bool()
    assert abs(_dice(F.avg_pool2d(up[:, None].float(), 2)[:, 0] >= 0.5, fine) - 1) < 0.02

    def back(coarse: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse[:, None], size=(128, 128), mode="bilinear", align_corners=False)
        return up[:, 0] > 0.5

    shares = F.avg_pool2d(fine[:, None].float(), 2)[:, 0]
    hard = label_grid(fine.numpy(), (64, 64)).float()
    nearest = F.interpolate(fine[:, None].float(), size=(64, 64), mode="nearest")[:, 0]
    assert torch.equal(hard.bool(), shares >= 0.5)
    assert _dice(back(shares), fine) > 0.95
    assert _dice(back(nearest), fine) < _dice(back(shares), fine) - 0.05


def test_rotation_turns_image_and_label_together_about_the_spine() -> None:
    """The label (on a grid twice as fine) is turned as the image; a point on the spine row 10.5
    px to the side of the centre lands 10.5 px above it after 90 degrees, in both grids (the
    image pixel spreads over the 2 x 2 pixels around that point, the fine label block covers it)."""
    image = torch.zeros(1, 64, 96)
    image[0, 30, 58] = 1.0
    label = torch.zeros(128, 192, dtype=torch.uint8)
    label[60:62, 116:118] = 1  # the same pixel on the fine grid
    turned, turned_label = _rotate(image, label, 90.0, row=30)
    assert (turned[0] > 0.1).nonzero().tolist() == [[19, 47], [19, 48], [20, 47], [20, 48]]
    assert turned_label.dtype == torch.uint8
    assert turned_label.nonzero().tolist() == [[39, 95], [39, 96], [40, 95], [40, 96]]
    same, same_label = _rotate(image, label, 0.0, row=30)
    torch.testing.assert_close(same, image, atol=1e-5, rtol=0)
    torch.testing.assert_close(same_label, label)
