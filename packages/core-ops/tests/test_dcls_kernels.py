"""Fused DCLS rendering (numba) equals the torch-op rendering in values and gradients."""

from __future__ import annotations

import pytest
import torch

from convsuite.core_ops.layers import dcls
from convsuite.core_ops.layers.dcls_kernels import RenderDCLS, flush_threshold, fused_applies


def _taps(
    version: str,
    dtype: torch.dtype,
    spread: float,
    window: tuple[int, int],
    seed: int,
    shape: tuple[int, int, int] = (6, 2, 5),
):
    generator = torch.Generator().manual_seed(seed)
    c_out, c_in, count = shape
    weight = torch.randn(c_out, c_in, count, dtype=dtype, generator=generator)
    positions = torch.randn(2, c_out, c_in, count, dtype=dtype, generator=generator) * spread
    positions[:, :, :, 0] = positions[:, :, :, 0].round()  # integer positions: interpolation kinks
    positions[0, 0, 0, 1] = window[1] // 2  # exactly on the clamp bounds
    positions[1, 0, 0, 1] = -(window[0] // 2)
    sigma = None
    if version == "gauss":
        sigma = torch.rand(2, c_out, c_in, count, dtype=dtype, generator=generator) - 0.3
        sigma[0, 1, 0, 0] = 0.0  # |SIG| at its kink
    inputs = [weight, positions] + ([sigma] if sigma is not None else [])
    return [t.requires_grad_() for t in inputs]


@pytest.mark.parametrize("version", ["v1", "gauss"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("spread", [0.7, 3.0, 9.0])  # 9.0: most taps clamped to the window edge
@pytest.mark.parametrize("region", [None, ((2, 7), (1, 6))])
def test_fused_rendering_equals_torch_ops(version, dtype, spread, region):
    window = (9, 7)
    inputs = _taps(version, dtype, spread, window, seed=int(spread * 10))
    sigma = inputs[2] if version == "gauss" else None
    fused = dcls.construct_kernel(inputs[0], inputs[1], window, version, sigma, region)
    assert fused.grad_fn is not None and "RenderDCLS" in type(fused.grad_fn).__name__
    plain = dcls._torch_kernel(inputs[0], inputs[1], window, version, sigma)
    if region is not None:
        plain = plain[..., slice(*region[0]), slice(*region[1])]
    assert fused.shape == plain.shape
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(fused, plain, **tol)
    grad = torch.randn_like(plain)
    for got, expected in zip(
        torch.autograd.grad(fused, inputs, grad),
        torch.autograd.grad(plain, inputs, grad),
        strict=True,
    ):
        assert expected.abs().max() > 0
        torch.testing.assert_close(got, expected, **tol)


@pytest.mark.parametrize("version", ["v1", "gauss"])
def test_fused_rendering_gradcheck_and_double_backward(version):
    window = (5, 7)
    inputs = _taps(version, torch.float64, 1.0, window, seed=3, shape=(2, 1, 3))
    with torch.no_grad():  # away from the kinks, where finite differences are meaningful
        inputs[1][:, :, :, 0] += 0.3
        inputs[1][:, 0, 0, 1] = 0.4
        if version == "gauss":
            inputs[2][0, 1, 0, 0] = 0.2

    def render(*tensors):
        sigma = tensors[2] if version == "gauss" else None
        return RenderDCLS.apply(
            tensors[0], tensors[1], sigma, window, version, dcls._torch_kernel, ((1, 4), (0, 6))
        )

    assert torch.autograd.gradcheck(render, inputs)
    # create_graph=True runs the torch path's backward, so second derivatives exist
    assert torch.autograd.gradgradcheck(render, inputs)


def test_fused_rendering_applies_to_2d_float_cpu_only():
    weight = torch.zeros(2, 1, 3)
    positions = torch.zeros(2, 2, 1, 3)
    assert fused_applies(weight, positions, (5, 5))
    assert not fused_applies(weight, positions[:1], (5,))
    assert not fused_applies(weight.bfloat16(), positions.bfloat16(), (5, 5))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused_applies(weight, positions, (5, 5))


@pytest.mark.parametrize("version", ["v1", "gauss"])
@pytest.mark.parametrize("size", [3, 5, 12])  # 3, 5: a 9x9 window reaches only its central 5x5, 9x9
def test_layer_rendering_only_reached_taps_keeps_output_and_gradients(version, size):
    torch.manual_seed(size)
    layer = dcls.DCLSConv2d(8, 8, 6, padding=4, dilated_kernel_size=9, groups=8, version=version)
    layer.double()
    with torch.no_grad():
        layer.P.mul_(3.0)  # taps all over the window, many outside the reached part
    x = torch.randn(2, 8, size, size, dtype=torch.float64, requires_grad=True)
    params = [x, *layer.parameters()]
    y = layer(x)
    grad = torch.randn_like(y)
    got = torch.autograd.grad(y, params, grad)
    # the whole kernel rendered by torch ops, convolved by torch
    dense = dcls._torch_kernel(layer.weight, layer.P, (9, 9), version, layer.SIG)
    y_ref = torch.nn.functional.conv2d(x, dense, layer.bias, 1, 4, 1, 8)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    for g, g_ref in zip(got, torch.autograd.grad(y_ref, params, grad), strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-10, atol=1e-12)


def test_reach_of_a_window():
    assert dcls._reach(4, 8, 17) == (5, 12)  # a 4x4 stage map uses the central 7x7 of 17x17
    assert dcls._reach(8, 8, 17) == (1, 16)
    assert dcls._reach(16, 8, 17) == (0, 17)
    assert dcls._reach(4, 3, 7) == (0, 7)  # a 7x7 window on a 4x4 map reaches all its taps


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gaussian_kernel_has_no_entries_below_the_flush_threshold(dtype):
    inputs = _taps("gauss", dtype, 3.0, (17, 17), seed=5)
    kernel = dcls.construct_kernel(inputs[0], inputs[1], (17, 17), "gauss", inputs[2]).detach()
    threshold = flush_threshold(dtype)
    assert threshold**2 >= torch.finfo(dtype).tiny  # products of kept entries stay normal
    nonzero = kernel[kernel != 0].abs()
    assert nonzero.numel() > 0 and nonzero.min() >= threshold
    if dtype == torch.float32:
        assert (kernel == 0).any()  # the far tails were flushed
