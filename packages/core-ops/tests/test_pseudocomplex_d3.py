"""Causal pseudo-complex D3 blocks: complex layout, complex-convolution reference, causality,
the D3 block as core-ops' D3Block, and the layer battery."""

from __future__ import annotations

import pytest
import torch
from convsuite_dev.testing import check_layer

from convsuite.core_ops.layers.complex import channels_to_complex, complex_to_channels
from convsuite.core_ops.layers.multidilated import D3Block
from convsuite.core_ops.layers.pseudocomplex_d3 import (
    CausalPseudoComplexConv2d,
    PseudoComplexD2Block,
    PseudoComplexMultiDilatedConv2d,
    pseudo_cat,
    pseudo_complex_d3_block,
    pseudo_split,
)


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _complex_conv_reference(layer: CausalPseudoComplexConv2d, z: torch.Tensor) -> torch.Tensor:
    """The same convolution done on complex tensors with complex weights (torch's complex conv)."""
    conv = layer.conv
    weight = torch.complex(conv.weight_real, conv.weight_imag).to(torch.complex128)
    bias = None
    if conv.bias_real is not None:
        bias = torch.complex(conv.bias_real, conv.bias_imag).to(torch.complex128)
    (k_t, _), (d_t, d_f) = conv.kernel_size, conv.dilation
    pad_t = (k_t - 1) * d_t if layer.causal else 0
    z = torch.nn.functional.pad(z, (0, 0, pad_t, 0))
    return torch.nn.functional.conv2d(z, weight, bias, padding=conv.padding, dilation=(d_t, d_f))


def test_pseudo_cat_and_split_keep_the_complex_layout() -> None:
    a, b = (
        torch.randn(2, 3, 5, 4, dtype=torch.complex64),
        torch.randn(2, 2, 5, 4, dtype=torch.complex64),
    )
    joined = pseudo_cat([complex_to_channels(a), complex_to_channels(b)])
    assert torch.equal(channels_to_complex(joined), torch.cat([a, b], dim=1))
    first, second = pseudo_split(joined, [3, 2])
    assert torch.equal(channels_to_complex(first), a) and torch.equal(
        channels_to_complex(second), b
    )


@pytest.mark.parametrize("causal", [True, False])
def test_causal_conv_matches_complex_convolution(causal: bool) -> None:
    torch.manual_seed(0)
    layer = CausalPseudoComplexConv2d(3, 4, (3, 3), dilation=(2, 3), causal=causal).double()
    with torch.no_grad():
        layer.conv.bias_real.normal_()
        layer.conv.bias_imag.normal_()
    z = torch.randn(2, 3, 11, 13, dtype=torch.complex128)
    out = channels_to_complex(layer(complex_to_channels(z)))
    assert out.shape == (2, 4, 11, 13)
    torch.testing.assert_close(out, _complex_conv_reference(layer, z))


def test_multidilated_is_the_sum_of_dilated_complex_convolutions() -> None:
    torch.manual_seed(1)
    layer = PseudoComplexMultiDilatedConv2d([2, 3, 3], 5).double()
    assert layer.dilations == (1, 2, 4)
    z = torch.randn(1, 8, 9, 7, dtype=torch.complex128)
    parts = torch.split(z, [2, 3, 3], dim=1)
    expected = sum(_complex_conv_reference(c, p) for c, p in zip(layer.convs, parts, strict=True))
    torch.testing.assert_close(channels_to_complex(layer(complex_to_channels(z))), expected)


def test_d3_block_shapes_and_parameter_count() -> None:
    block = pseudo_complex_d3_block(16, 18, 4, 3)
    assert block.out_channels == 16 + 3 * 4 * 18
    x = torch.randn(1, 32, 6, 10)
    assert block(x).shape == (1, 2 * block.out_channels, 6, 10)
    # A pseudo-complex k x k conv has 2 C_in C_out k^2 weights (+ 2 C_out bias on group 0).
    d2 = PseudoComplexD2Block(5, 3, 2, bottleneck_channels=None)
    expected = 2 * 5 * 3 * 9 + 2 * 3 + 2 * (5 + 3) * 3 * 9 + 2 * 3 + 2 * 2 * 5 + 2 * 2 * 8
    assert sum(p.numel() for p in d2.parameters()) == expected


def test_causal_block_ignores_the_future() -> None:
    torch.manual_seed(2)
    block = pseudo_complex_d3_block(2, 3, 3, 2).eval()
    x = torch.randn(1, 4, 30, 9)
    changed = x.clone()
    changed[:, :, 20:] = torch.randn_like(changed[:, :, 20:])
    with torch.no_grad():
        a, b = block(x), block(changed)
    torch.testing.assert_close(a[:, :, :20], b[:, :, :20])
    assert not torch.allclose(a[:, :, 20:], b[:, :, 20:])
    acausal = pseudo_complex_d3_block(2, 3, 3, 2, causal=False).eval()
    with torch.no_grad():
        assert not torch.allclose(acausal(x)[:, :, :20], acausal(changed)[:, :, :20])


def test_d3_block_is_core_ops_d3_block_on_pseudo_complex_d2_blocks() -> None:
    """The dense loop is D3Block's: block b sees pseudo_cat of the input and earlier outputs."""
    torch.manual_seed(3)
    block = pseudo_complex_d3_block(2, 3, 3, 2, bottleneck_factor=1).eval()
    assert isinstance(block, D3Block) and block.concat is pseudo_cat
    assert all(isinstance(b, PseudoComplexD2Block) for b in block.blocks)
    assert next(iter(block.state_dict())).startswith("blocks.0.")
    x = torch.randn(2, 4, 12, 9)
    with torch.no_grad():
        z0 = block.blocks[0](x)
        z1 = block.blocks[1](pseudo_cat([x, z0]))
        torch.testing.assert_close(block(x), pseudo_cat([x, z0, z1]))


def test_layer_battery() -> None:
    check_layer(
        lambda: pseudo_complex_d3_block(1, 2, 2, 1), (1, 2, 6, 5), gradcheck_shape=(1, 2, 4, 3)
    )


def test_pseudo_cat_and_split_keep_channels_last_maps_channels_last() -> None:
    parts = [torch.randn(1, 2 * c, 5, 7) for c in (3, 2)]
    last = [p.contiguous(memory_format=torch.channels_last) for p in parts]
    joined = pseudo_cat(last)
    assert torch.equal(joined, pseudo_cat(parts))
    assert joined.is_contiguous(memory_format=torch.channels_last) and not joined.is_contiguous()
    for got, want in zip(pseudo_split(joined, [3, 2]), parts, strict=True):
        assert torch.equal(got, want) and got.is_contiguous(memory_format=torch.channels_last)


def test_d2_block_by_parts_equals_the_joined_path() -> None:
    """Eval on channels-last maps takes each layer's input unjoined: the same numbers."""
    torch.manual_seed(4)
    block = PseudoComplexD2Block(5, 3, 3, bottleneck_channels=None).double().eval()
    for module in block.modules():
        if isinstance(module, torch.nn.BatchNorm2d):  # statistics that differ per channel
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
    calls: list[int] = []
    for layer in block.layers:
        layer[0].register_forward_hook(lambda *_: calls.append(1))  # the joined path's norm
    x = torch.randn(1, 10, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        joined = block(x)
        assert len(calls) == 3
        parts = block(x.contiguous(memory_format=torch.channels_last))
        assert len(calls) == 3  # no joined input normalized: the by-parts path ran
    torch.testing.assert_close(parts, joined, rtol=1e-12, atol=1e-12)


def test_d3_block_trains_on_channels_last_maps() -> None:
    """Gradients pass pseudo_cat / pseudo_split on channels-last maps (cat's ``out=`` does not)."""
    torch.manual_seed(5)
    block = pseudo_complex_d3_block(2, 2, 2, 2).double()
    x = torch.randn(1, 4, 6, 5, dtype=torch.float64)
    x_last = x.clone().contiguous(memory_format=torch.channels_last).requires_grad_()
    block(x_last).square().sum().backward()
    grads_last = [p.grad.clone() for p in block.parameters()]
    block.zero_grad()
    x = x.requires_grad_()
    block(x).square().sum().backward()
    torch.testing.assert_close(x_last.grad, x.grad)
    for got, want in zip(grads_last, (p.grad for p in block.parameters()), strict=True):
        torch.testing.assert_close(got, want)
    parts = [torch.randn(1, 4, 3, 3).contiguous(memory_format=torch.channels_last)]
    parts.append(parts[0].clone().requires_grad_())
    assert pseudo_cat(parts).requires_grad
    assert all(p.requires_grad for p in pseudo_split(parts[1], [1, 1]))


def test_pseudo_cat_promotes_mixed_dtypes_as_on_nchw_maps() -> None:
    parts = [torch.randn(1, 4, 3, 5, dtype=torch.bfloat16), torch.randn(1, 2, 3, 5)]
    last = [p.contiguous(memory_format=torch.channels_last) for p in parts]
    want = pseudo_cat(parts)
    got = pseudo_cat(last)
    assert want.dtype == got.dtype == torch.float32
    assert torch.equal(got, want)
