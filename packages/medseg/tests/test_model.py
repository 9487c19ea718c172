"""HybridGNet: the paper's size, its graph, its image-to-graph sampling, its loss, and that it learns."""

from __future__ import annotations

import pytest
import torch
from convsuite_dev.testing import assert_learns

from convsuite.medseg.models import ContourGraph, HybridGNet, preset
from convsuite.medseg.models.contour_graph import ring_downsample, ring_upsample
from convsuite.medseg.models.hybridgnet import sample_window


def test_paper_preset_has_the_papers_parameter_count() -> None:
    n_parameters = sum(p.numel() for p in HybridGNet(preset("paper")).parameters())
    assert abs(n_parameters - 17.5e6) / 17.5e6 < 0.02, n_parameters


def test_contour_graph_is_one_ring_per_organ() -> None:
    graph = ContourGraph.for_organs(("RL", "LL", "H"))
    assert graph.num_nodes == 120 and graph.num_pooled_nodes == 60
    assert torch.all(graph.adjacency.sum(1) == 2)  # every node has exactly two neighbours
    # no edge joins two organs: blocks off the diagonal are empty
    assert graph.adjacency[:44, 44:].sum() == 0 and graph.adjacency[44:94, 94:].sum() == 0
    with_clavicles = ContourGraph.for_organs(("RL", "LL", "H", "RCLA", "LCLA"))
    assert with_clavicles.num_nodes == 166
    with pytest.raises(ValueError, match="unknown organs"):
        ContourGraph.for_organs(("RL", "spleen"))


def test_pooling_then_unpooling_keeps_a_smooth_ring() -> None:
    angles = torch.linspace(0, 2 * torch.pi, 45)[:-1]
    ring = torch.stack([angles.cos(), angles.sin()], 1)
    restored = ring_upsample(44) @ (ring_downsample(44) @ ring)
    assert (restored - ring).norm(dim=1).max() < 0.1
    assert torch.allclose(ring_downsample(25).sum(1), torch.ones(13))


def test_sample_window_reads_a_linear_ramp_at_the_node() -> None:
    """The mean of a symmetric window of a linear function is its value at the centre."""
    size = 16
    xs = (torch.arange(size) + 0.5) / size  # pixel-centre coordinate in [0, 1]
    ramp = (2 * xs[None, :] + 3 * xs[:, None]).expand(1, 1, size, size).contiguous()
    positions = torch.tensor([[[0.3, 0.6], [0.5, 0.5], [0.71, 0.27]]])
    sampled = sample_window(ramp, positions, window=3)[0, :, 0]
    expected = 2 * positions[0, :, 0] + 3 * positions[0, :, 1]
    torch.testing.assert_close(sampled, expected, rtol=1e-5, atol=1e-5)


def test_forward_shapes_and_eval_is_deterministic() -> None:
    net = HybridGNet(preset("tiny"))
    image = torch.rand(2, 1, 64, 64)
    net.train()
    out = net(image)
    assert out.landmarks.shape == (2, 120, 2) and out.positions_pooled.shape == (2, 60, 2)
    net.eval()
    torch.testing.assert_close(net(image).landmarks, net(image).landmarks)


def test_loss_has_the_papers_terms() -> None:
    net = HybridGNet(preset("tiny"))
    out = net(torch.rand(2, 1, 64, 64))
    target = torch.rand(2, 120, 2)
    losses = net.loss(out, target)
    expected = (
        torch.nn.functional.mse_loss(out.landmarks, target) + losses["skip"] + 1e-5 * losses["kl"]
    )
    torch.testing.assert_close(losses["loss"], expected)
    assert losses["kl"] >= 0


def _ellipse_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of one bright ellipse whose position and size set three rings' landmark targets."""
    size = 64
    centre = 0.35 + 0.3 * torch.rand(n, 2, generator=generator)
    radius = 0.1 + 0.1 * torch.rand(n, 1, generator=generator)
    yy, xx = torch.meshgrid(
        (torch.arange(size) + 0.5) / size, (torch.arange(size) + 0.5) / size, indexing="ij"
    )
    inside = ((xx - centre[:, 0, None, None]) ** 2 + (yy - centre[:, 1, None, None]) ** 2) < radius[
        ..., None
    ] ** 2
    images = inside.float()[:, None]
    nodes = []
    for count in (44, 50, 26):
        angle = torch.linspace(0, 2 * torch.pi, count + 1)[:-1]
        unit = torch.stack([angle.cos(), angle.sin()], 1)
        nodes.append(centre[:, None, :] + radius[:, None, :] * unit[None])
    return images, torch.cat(nodes, 1)


def test_tiny_hybridgnet_learns_contours_from_images() -> None:
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    batches = [_ellipse_batch(16, generator) for _ in range(8)]
    net = HybridGNet(preset("tiny"))

    class Landmarks(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x).landmarks

    first, last = assert_learns(
        Landmarks(), batches, torch.nn.functional.mse_loss, epochs=60, lr=3e-3, min_drop=0.2
    )
    # better than predicting the mean landmark configuration of the data
    targets = torch.cat([t for _, t in batches])
    trivial = torch.nn.functional.mse_loss(
        targets.mean(0, keepdim=True).expand_as(targets), targets
    )
    assert last < 0.3 * trivial.item(), (last, trivial.item())
