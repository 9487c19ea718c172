"""Multidilated convolution and D2/D3 blocks: shapes, per-group dilation, receptive field, learning;
convolution factories (other paddings, HEALPix faces) and the parallel-branch form."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_learns, check_layer
from torch import nn

from convsuite.core_ops.layers.healpix import HEALPixConv2d
from convsuite.core_ops.layers.multidilated import (
    D2Block,
    D3Block,
    MultiDilatedConv2d,
    same_padding_conv,
)


def _footprint(response: torch.Tensor) -> set[tuple[int, ...]]:
    """Spatial positions where any channel of a (1, C, *spatial) response is non-zero."""
    support = response.abs().sum(dim=(0, 1)) > 1e-7
    return {tuple(int(i) for i in idx) for idx in support.nonzero()}


def _impulse_response(model: nn.Module, channels: int, size: int, dims: int, channel: int = 0):
    """model(delta) - model(0) for a delta at the centre of ``channel``, in eval mode."""
    model.eval()
    zero = torch.zeros(1, channels, *[size] * dims)
    delta = zero.clone()
    delta[(0, channel, *[size // 2] * dims)] = 1.0
    with torch.no_grad():
        return model(delta) - model(zero)


def test_output_channels():
    x = torch.randn(2, 6, 11, 13)
    conv = MultiDilatedConv2d(12, 5, dilations=(1, 2, 4))
    assert conv.in_groups == (4, 4, 4)
    assert conv(torch.randn(2, 12, 11, 13)).shape == (2, 5, 11, 13)

    d2 = D2Block(6, 4, num_layers=3)
    assert d2(x).shape == (2, 12, 11, 13) and d2.out_channels == 12
    assert D2Block(6, 4, 3, out_layers=1)(x).shape == (2, 4, 11, 13)
    narrow = D2Block(6, 4, 3, bottleneck_channels=2)
    assert narrow.bottleneck is not None and narrow(x).shape == (2, 12, 11, 13)

    d3 = D3Block(6, 4, num_layers=3, num_blocks=2)
    out = d3(x)
    assert out.shape == (2, 6 + 2 * 12, 11, 13) and d3.out_channels == out.shape[1]
    assert torch.equal(out[:, :6], x)  # the block input leads the output
    # Dense connections: the second D2 block sees the input and the first block's output; its
    # bottleneck is active once that concatenation is wider than 4 * growth_rate.
    assert d3.blocks[0].bottleneck is None and d3.blocks[1].bottleneck is not None

    d3_1d = D3Block(3, 2, num_layers=2, num_blocks=3, out_layers=1, spatial_dims=1)
    assert d3_1d(torch.randn(2, 3, 40)).shape == (2, 3 + 3 * 2, 40)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_each_group_is_convolved_at_its_dilation(dims, kernel_size):
    torch.manual_seed(dims)
    groups, dilations = (2, 3, 1), (1, 2, 3) if dims == 3 else (1, 2, 4)
    conv = MultiDilatedConv2d(6, 4, kernel_size, dilations, groups, spatial_dims=dims)
    size = 2 * max(dilations) * (kernel_size // 2) + 3
    centre, half = size // 2, kernel_size // 2
    starts = (0, 2, 5)
    for group, (start, dilation) in enumerate(zip(starts, dilations, strict=True)):
        for channel in (start, start + groups[group] - 1):
            response = _impulse_response(conv, 6, size, dims, channel)
            expected = {
                tuple(centre + dilation * o for o in offset)
                for offset in itertools.product(range(-half, half + 1), repeat=dims)
            }
            assert _footprint(response) == expected, f"group {group} not at dilation {dilation}"


def _linearized(block: D2Block) -> D2Block:
    """The block with its ReLUs removed: an affine map whose support shows the connectivity."""
    for layer in block.layers:
        layer[1] = nn.Identity()
    return block


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_d2_receptive_field_grows_exponentially(kernel_size):
    torch.manual_seed(0)
    half = kernel_size // 2
    radii = []
    for num_layers in range(1, 5):
        block = _linearized(D2Block(2, 3, num_layers, kernel_size))
        size = 2 * (2**num_layers) * half + 3
        response = _impulse_response(block, 2, size, 2)
        # Last layer only: its footprint is the block's receptive field.
        footprint = _footprint(response[:, -3:])
        radius = max(max(abs(i - size // 2), abs(j - size // 2)) for i, j in footprint)
        radii.append(radius)
    # Layer l reaches (2^(l+1) - 1) * (k // 2): doubling each layer, not + (k // 2) as without
    # dilation.
    assert radii == [(2 ** (n + 1) - 1) * half for n in range(4)]

    # With ReLUs in place the last layer still sees that far (gradient of the centre output).
    block = D2Block(2, 3, 4, kernel_size).eval()
    size = 2 * 16 * half + 3
    x = torch.randn(1, 2, size, size, requires_grad=True)
    block(x)[0, -3:, size // 2, size // 2].sum().backward()
    rows, cols = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero().unbind(1)
    reach = int(torch.maximum((rows - size // 2).abs(), (cols - size // 2).abs()).max())
    assert reach == 15 * half


def test_battery():
    check_layer(lambda: MultiDilatedConv2d(6, 4, dilations=(1, 2, 3)), (2, 6, 10, 12))
    check_layer(lambda: D2Block(3, 2, 3), (2, 3, 12, 13), gradcheck_shape=(1, 3, 9, 9))
    check_layer(
        lambda: D3Block(3, 2, num_layers=2, num_blocks=2, bottleneck_factor=2),
        (2, 3, 10, 11),
        gradcheck_shape=(1, 3, 7, 7),
    )


def test_learns_shifted_blur():
    torch.manual_seed(0)

    def target(x: torch.Tensor) -> torch.Tensor:
        shifted = F.pad(x, (4, 0, 0, 0))[..., :-4]  # 4 pixels right: needs a wide receptive field
        return F.avg_pool2d(shifted, 3, stride=1, padding=1)

    batches = [(x, target(x)) for x in torch.randn(4, 8, 1, 20, 20)]
    model = nn.Sequential(D2Block(1, 4, 3), nn.Conv2d(12, 1, 1))
    # An undilated 3-layer block (radius 3) only gets to ~0.55 of the start here.
    assert_learns(model, batches, F.mse_loss, epochs=25, lr=1e-2, min_drop=0.3)


def test_rejects_inconsistent_groups():
    with pytest.raises(ValueError):
        MultiDilatedConv2d(6, 4, dilations=(1, 2), in_groups=(2, 2, 2))
    with pytest.raises(ValueError):
        MultiDilatedConv2d(7, 4, dilations=(1, 2))
    with pytest.raises(ValueError):
        MultiDilatedConv2d(6, 4, kernel_size=4)
    with pytest.raises(ValueError):
        D2Block(4, 2, 3, out_layers=4)


def _circular(in_channels: int, out_channels: int, kernel_size: int, *, dilation: int, bias: bool):
    """A convolution factory with circular padding (a torus instead of zeros)."""
    padding = dilation * (kernel_size // 2)
    return nn.Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        padding=padding,
        dilation=dilation,
        bias=bias,
        padding_mode="circular",
    )


def test_default_factory_keeps_the_state_dict_keys_and_zero_padding():
    torch.manual_seed(0)
    conv = MultiDilatedConv2d(6, 4, dilations=(1, 2, 4))
    assert list(conv.state_dict()) == ["convs.0.weight", "convs.0.bias", "convs.1.weight"] + [
        "convs.2.weight"
    ]
    x = torch.randn(2, 6, 9, 10)
    reference = sum(
        F.conv2d(part, c.weight, c.bias, padding=d, dilation=d)
        for part, c, d in zip(x.split(2, dim=1), conv.convs, (1, 2, 4), strict=True)
    )
    torch.testing.assert_close(conv(x), reference)
    made = same_padding_conv(3)(2, 3, 5, dilation=2, bias=False)
    assert isinstance(made, nn.Conv3d) and made.padding == (4, 4, 4) and made.bias is None


def test_factory_builds_every_branch_with_its_padding():
    torch.manual_seed(0)
    calls = []

    def factory(*args, **kwargs):
        calls.append((args, kwargs))
        return _circular(*args, **kwargs)

    conv = MultiDilatedConv2d(4, 3, 3, (1, 2), conv_factory=factory).eval()
    assert calls == [
        ((2, 3, 3), {"dilation": 1, "bias": True}),
        ((2, 3, 3), {"dilation": 2, "bias": False}),
    ]
    size = 9
    delta = torch.zeros(1, 4, size, size)
    delta[0, 2, 0, 0] = 1.0  # the dilation-2 group, in a corner
    with torch.no_grad():
        response = conv(delta) - conv(torch.zeros_like(delta))
    # circular padding: the taps that fall off the top-left corner come back at the far sides
    expected = {(i % size, j % size) for i in (-2, 0, 2) for j in (-2, 0, 2)}
    assert _footprint(response) == expected
    check_layer(lambda: MultiDilatedConv2d(4, 3, 3, (1, 2), conv_factory=_circular), (2, 4, 8, 9))


def test_parallel_branches_concatenate_convolutions_of_the_whole_input():
    torch.manual_seed(0)
    conv = MultiDilatedConv2d(3, 2, 3, (1, 2, 3), shared_input=True, merge="concat")
    assert conv.out_channels == 6 and conv.in_groups is None
    assert all(c.in_channels == 3 and c.bias is not None for c in conv.convs)
    x = torch.randn(2, 3, 11, 12)
    reference = torch.cat(
        [
            F.conv2d(x, c.weight, c.bias, padding=d, dilation=d)
            for c, d in zip(conv.convs, (1, 2, 3), strict=True)
        ],
        dim=1,
    )
    torch.testing.assert_close(conv(x), reference)
    summed = MultiDilatedConv2d(3, 2, 3, (1, 2), shared_input=True).eval()
    assert summed.out_channels == 2 and summed.convs[1].bias is None
    torch.testing.assert_close(summed(x), summed.convs[0](x) + summed.convs[1](x))
    check_layer(
        lambda: MultiDilatedConv2d(3, 2, 3, (1, 2), shared_input=True, merge="concat"),
        (2, 3, 9, 10),
    )


def test_healpix_faces_as_the_factory():
    """Parallel dilated branches on HEALPix face stacks (cosmo's context blocks): each branch is
    a ``HEALPixConv2d``, padded from the neighbouring faces."""
    torch.manual_seed(0)
    conv = MultiDilatedConv2d(
        4,
        4,
        3,
        (1, 2, 4),
        bias=False,
        conv_factory=HEALPixConv2d,
        shared_input=True,
        merge="concat",
    )
    assert all(isinstance(c, HEALPixConv2d) for c in conv.convs)
    assert [c.pad.padding for c in conv.convs] == [1, 2, 4]
    assert list(conv.state_dict()) == [f"convs.{g}.weight" for g in range(3)]
    faces = torch.randn(2 * 12, 4, 8, 8)
    out = conv(faces)
    torch.testing.assert_close(out, torch.cat([c(faces) for c in conv.convs], dim=1))
    # the dilation-4 branch with zero padding instead: the same inside each face, not at its rim
    zero = F.conv2d(faces, conv.convs[2].weight, padding=4, dilation=4)
    torch.testing.assert_close(out[:, 8:, 4:-4, 4:-4], zero[..., 4:-4, 4:-4])
    assert not torch.allclose(out[:, 8:, :4], zero[:, :, :4])


def test_rejects_inconsistent_branches():
    with pytest.raises(ValueError, match="shared_input"):
        MultiDilatedConv2d(6, 4, in_groups=(3, 3), dilations=(1, 2), shared_input=True)
    with pytest.raises(ValueError, match="shared_input"):
        MultiDilatedConv2d(6, 4, shared_input=True)
    with pytest.raises(ValueError, match="merge"):
        MultiDilatedConv2d(6, 4, dilations=(1, 2), merge="mean")
