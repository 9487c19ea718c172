"""HybridGNet and the U-Net baseline: registry and presets, the paper's size, the graph, the
image-to-graph sampling, the loss, and that it learns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from convsuite_dev.testing import assert_learns

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import create_model, list_presets, model_config
from convsuite.core_ops.io import save_checkpoint
from convsuite.medseg import HybridGNet, HybridGNetConfig, UNetBaseline, UNetBaselineConfig
from convsuite.medseg.models.contour_graph import ContourGraph, ring_downsample, ring_upsample
from convsuite.medseg.models.hybridgnet import sample_window


def _tiny() -> HybridGNetConfig:
    return model_config("hybridgnet", "tiny")


def test_paper_preset_has_the_papers_parameter_count() -> None:
    n_parameters = sum(p.numel() for p in create_model("hybridgnet", preset="paper").parameters())
    assert abs(n_parameters - 17.5e6) / 17.5e6 < 0.02, n_parameters


@pytest.mark.parametrize(
    ("name", "network", "config_class"),
    [
        ("hybridgnet", HybridGNet, HybridGNetConfig),
        ("unet_baseline", UNetBaseline, UNetBaselineConfig),
    ],
)
def test_create_model_builds_each_preset(name: str, network: type, config_class: type) -> None:
    assert list_presets(name) == ["paper", "small", "tiny"]
    net = create_model(name, preset="tiny")
    assert type(net) is network and net.config == model_config(name, "tiny")
    assert isinstance(net.config, config_class) and net.card is None
    assert create_model(name).config == config_class()  # the paper's is the default
    small = create_model(name, preset="small", image_size=128)
    assert small.config.image_size == 128 and small.config == model_config(name, "small").replace(
        image_size=128
    )
    with pytest.raises(InputError, match="no preset of that name"):
        create_model(name, preset="huge")


def test_configs_round_trip_and_refuse_bad_values() -> None:
    config = _tiny()
    assert HybridGNetConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(InputError, match="card.json: unknown HybridGNetConfig keys 'depth'"):
        HybridGNetConfig.from_dict({"depth": 3}, source="card.json")
    with pytest.raises(InputError, match="image_size must be a multiple of 32"):
        HybridGNetConfig.from_dict({"image_size": 100})
    with pytest.raises(InputError, match="organs must be some of"):
        UNetBaselineConfig.from_dict({"organs": ["RL", "spleen"]})
    with pytest.raises(InputError, match="image_size must be an integer"):
        model_config("unet_baseline", "tiny", image_size="64")


def test_from_pretrained_round_trips_a_saved_network(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = create_model("hybridgnet", preset="tiny").eval()
    card = net.model_card("test", "none", "tests", inputs={"image_size": 64})
    path = save_checkpoint(net.state_dict(), tmp_path / "tiny.safetensors", card)
    loaded = create_model("hybridgnet", pretrained=path)
    assert loaded.config == net.config and loaded.card.inputs == {"image_size": 64}
    image = torch.rand(1, 1, 64, 64)
    torch.testing.assert_close(loaded(image).landmarks, net(image).landmarks)
    with pytest.raises(InputError, match="holds a HybridGNet, not a UNetBaseline"):
        UNetBaseline.from_pretrained(path)


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


def test_forward_shapes() -> None:
    net = HybridGNet(_tiny()).train()
    out = net(torch.rand(2, 1, 64, 64))
    assert out.landmarks.shape == (2, 120, 2) and out.positions_pooled.shape == (2, 60, 2)
    assert out.positions_full.shape == (2, 120, 2) and out.mean.shape == (2, 64)


def test_an_image_alone_and_inside_a_batch_gives_the_same_landmarks() -> None:
    """Eval mode uses BatchNorm's running statistics (unlike the reference, which normalises with
    the batch's own): an image's landmarks do not depend on the other images of its batch."""
    net = HybridGNet.from_pretrained("hybridgnet_small")
    generator = torch.Generator().manual_seed(5)
    batch = torch.rand(5, 1, 256, 256, generator=generator)
    batch[3] *= 0.3  # a darker image among them: batch statistics would move the others
    with torch.no_grad():
        together = net(batch).landmarks
        alone = torch.cat([net(batch[i : i + 1]).landmarks for i in range(5)])
        reordered = net(batch.flip(0)).landmarks.flip(0)
    torch.testing.assert_close(alone, together, rtol=0, atol=1e-5)
    torch.testing.assert_close(reordered, together, rtol=0, atol=1e-5)
    assert (together[0] - together[3]).abs().max() > 1e-3  # the images do differ


def test_loss_has_the_papers_terms() -> None:
    net = HybridGNet(_tiny())
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
    net = HybridGNet(_tiny())

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
