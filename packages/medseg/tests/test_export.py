"""Both networks are pure torch modules: ``torch.export`` captures them at the tiny preset, with a
dynamic batch, and the exported program gives the network's own output on another batch size."""

from __future__ import annotations

import pytest
import torch
from torch.export import Dim

from convsuite.core_ops.hub import create_model


@pytest.mark.parametrize("name", ["hybridgnet", "unet_baseline"])
def test_tiny_network_exports_and_the_export_gives_the_same_output(name: str) -> None:
    torch.manual_seed(0)
    net = create_model(name, preset="tiny").eval()
    size = net.config.image_size
    example = torch.rand(2, 1, size, size)
    batch = Dim("batch", min=1, max=64)
    exported = torch.export.export(net, (example,), dynamic_shapes=({0: batch},))
    images = torch.rand(3, 1, size, size)
    with torch.no_grad():
        expected, got = net(images), exported.module()(images)
    if name == "hybridgnet":
        assert type(got) is type(expected)  # HybridGNetOutput, every field
        for field, value in zip(expected._fields, got, strict=True):
            torch.testing.assert_close(value, getattr(expected, field), rtol=1e-5, atol=1e-6)
    else:
        assert got.shape == (3, len(net.config.organs), size, size)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
