"""Fused DCLS rendering (numba) equals the torch-op rendering in values and gradients."""

from __future__ import annotations

import pytest
import torch
from convsuite_dev.testing import assert_gradients_close

from convsuite.core_ops.layers import dcls
from convsuite.core_ops.layers.dcls import flush_threshold, fused_applies
from convsuite.core_ops.layers.dcls_kernels import RenderDCLS
from convsuite.core_ops.layers.fft_conv import large_kernel_conv, reached_taps


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
    torch.manual_seed(1)
    if dtype == torch.float32:  # the torch path sums rounded float32 terms (the fused path float64)
        assert_gradients_close(fused, plain, inputs, rtol=1e-5, atol=2e-5, scaled=True)
    else:
        assert_gradients_close(fused, plain, inputs, **tol)


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
        return RenderDCLS.apply(tensors[0], tensors[1], sigma, window, version, ((1, 4), (0, 6)))

    assert torch.autograd.gradcheck(render, inputs)
    # create_graph=True runs the torch path's backward, so second derivatives exist
    assert torch.autograd.gradgradcheck(render, inputs)


def test_fused_rendering_applies_to_2d_float_cpu_only():
    weight = torch.zeros(2, 1, 3)
    positions = torch.zeros(2, 2, 1, 3)
    assert fused_applies(weight, positions, (5, 5))
    assert not fused_applies(weight, positions[:1], (5,))
    assert not fused_applies(weight.bfloat16(), positions.bfloat16(), (5, 5))
    assert fused_applies(weight, positions, (5, 5), positions.clone())
    assert not fused_applies(weight, positions, (5, 5), positions.double())  # sigma's dtype
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not fused_applies(weight, positions, (5, 5))


# (map, window, padding, kernel that reaches the convolution): square and non-square maps and
# windows, padding of half the window and below it
REACH_CASES = [
    ((3, 3), (9, 9), (4, 4), (5, 5)),  # a 9x9 window on a 3x3 map reaches its central 5x5
    ((5, 5), (9, 9), (4, 4), (9, 9)),
    ((12, 12), (9, 9), (4, 4), (9, 9)),
    ((3, 12), (9, 7), (4, 3), (5, 7)),
    ((5, 2), (9, 7), (2, 3), (5, 3)),  # padding 2 < 9 // 2: one output row, 5 of 9 rows reached
]


@pytest.mark.parametrize("version", ["v1", "gauss"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("size", "window", "padding", "reached"), REACH_CASES)
def test_layer_rendering_only_reached_taps_keeps_output_and_gradients(
    version, dtype, size, window, padding, reached, monkeypatch
):
    torch.manual_seed(sum(size) + sum(window))
    layer = dcls.DCLSConv2d(
        8, 8, 6, padding=padding, dilated_kernel_size=window, groups=8, version=version
    ).to(dtype)
    with torch.no_grad():
        layer.P.mul_(3.0)  # taps all over the window, many outside the reached part
    x = torch.randn(2, 8, *size, dtype=dtype, requires_grad=True)
    params = [x, *layer.parameters()]
    shapes = []

    def spy(x, weight, *args, **kwargs):
        shapes.append(tuple(weight.shape[2:]))
        return large_kernel_conv(x, weight, *args, **kwargs)

    monkeypatch.setattr(dcls, "large_kernel_conv", spy)
    y = layer(x)
    assert shapes == [reached]  # only the reached taps were rendered and convolved
    # the whole kernel rendered by torch ops, convolved by torch
    dense = dcls._torch_kernel(layer.weight, layer.P, window, version, layer.SIG)
    y_ref = torch.nn.functional.conv2d(x, dense, layer.bias, 1, padding, 1, 8)
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(y, y_ref, **tol)
    assert_gradients_close(y, y_ref, tuple(params), **tol)


def test_reached_taps_of_a_window():
    assert reached_taps(4, 8, 8, 17) == (5, 12)  # a 4x4 map uses the central 7x7 of 17x17
    assert reached_taps(8, 8, 8, 17) == (1, 16)
    assert reached_taps(16, 8, 8, 17) == (0, 17)
    assert reached_taps(4, 3, 3, 7) == (0, 7)  # a 7x7 window on a 4x4 map: all its taps
    assert reached_taps(5, 2, 2, 9) == (2, 7)  # padding below half the window
    assert reached_taps(4, 3, 2, 7) is None  # unequal padding: not cropped
    assert reached_taps(2, 1, 1, 9) is None  # no output


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_16_bit_gaussian_kernel_is_close_to_the_float32_one(dtype):
    inputs = [t.detach() for t in _taps("gauss", torch.float32, 3.0, (17, 17), seed=7)]
    low = [t.to(dtype) for t in inputs]
    kernel = dcls.construct_kernel(low[0], low[1], (17, 17), "gauss", low[2]).float()
    # against the float32 rendering of the same (rounded) taps: the flush, not the rounding
    reference = dcls.construct_kernel(
        *(t.float() for t in low[:2]), (17, 17), "gauss", low[2].float()
    )
    error = (kernel - reference).norm() / reference.norm()
    # float16: 0.3% (1.2% with its own flush threshold, 7.8e-3); bfloat16: 2.4%, its 8-bit
    # mantissa's rounding (its threshold is float32's)
    bound = 1e-2 if dtype == torch.float16 else 3e-2
    assert error < bound, f"{dtype}: relative L2 error {error:.4f}"


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("version", ["v1", "gauss"])
def test_zero_weights_get_a_gradient(fused, version, monkeypatch):
    """The flush sets small kernel entries to zero in value only: all-zero weights still learn."""
    monkeypatch.setattr(dcls, "FUSED_RENDERING", fused)
    torch.manual_seed(0)
    layer = dcls.DCLSConv2d(4, 4, 5, padding=3, dilated_kernel_size=7, groups=4, version=version)
    with torch.no_grad():
        layer.weight.zero_()
    layer(torch.randn(2, 4, 9, 9)).square().sum().backward()
    assert layer.weight.grad is not None and layer.weight.grad.abs().max() > 0


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("version", ["v1", "gauss"])
def test_nan_position_gives_nan(fused, version, monkeypatch):
    monkeypatch.setattr(dcls, "FUSED_RENDERING", fused)
    inputs = _taps(version, torch.float64, 1.0, (9, 9), seed=2)
    with torch.no_grad():
        inputs[1][0, 1, 0, 2] = float("nan")
    sigma = inputs[2] if version == "gauss" else None
    kernel = dcls.construct_kernel(inputs[0], inputs[1], (9, 9), version, sigma)
    assert kernel[1].isnan().any()
    assert not kernel[0].isnan().any()  # other channel pairs are unaffected
    grads = torch.autograd.grad(kernel.sum(), inputs, allow_unused=True)
    assert grads[0][1].isnan().any()


def test_construct_kernel_checks_region_and_shapes():
    weight, positions, sigma = (t.detach() for t in _taps("gauss", torch.float32, 1.0, (9, 9), 1))
    for region in (((0, 10), (0, 9)), ((-1, 9), (0, 9)), ((4, 4), (0, 9)), ((0, 9),)):
        with pytest.raises(ValueError, match="region"):
            dcls.construct_kernel(weight, positions, (9, 9), "gauss", sigma, region)
    with pytest.raises(ValueError, match="positions"):
        dcls.construct_kernel(weight, positions[:, :, :, :3], (9, 9), "gauss", sigma)
    with pytest.raises(ValueError, match="sigma"):
        dcls.construct_kernel(weight, positions, (9, 9), "gauss", sigma[:1])
    with pytest.raises(ValueError, match="positions"):
        dcls.construct_kernel(weight, positions[:1], (9, 9), "v1")


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
