"""FFT convolution: equal to torch's direct convolution in values and gradients, drop-in modules."""

from __future__ import annotations

import importlib

import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_gradients_close, check_layer
from torch import nn

from convsuite.core_ops.layers.fft_conv import (
    ROUTES,
    FFTConv1d,
    FFTConv2d,
    choose_route,
    conv_by_route,
    fft_conv,
    large_kernel_conv,
    next_fast_len,
)

DIRECT = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def test_next_fast_len_is_smallest_5_smooth() -> None:
    def smooth(n: int) -> bool:
        for p in (2, 3, 5):
            while n % p == 0:
                n //= p
        return n == 1

    for n in range(1, 400):
        m = next_fast_len(n)
        assert m >= n and smooth(m)
        assert not any(smooth(j) for j in range(n, m))


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize(("c_in", "c_out", "groups"), [(4, 4, 4), (4, 8, 4), (6, 4, 2), (3, 5, 1)])
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "dilation"),
    [(3, 1, 1, 1), (5, 2, 2, 1), (4, 1, "same", 2), (7, 3, 0, 1), (3, 1, "valid", 3), (5, 1, 6, 1)],
)
def test_values_and_gradients_equal_direct(
    dims, c_in, c_out, groups, kernel, stride, padding, dilation
):
    torch.manual_seed(0)
    spatial = (9,) * dims if dims < 3 else (9, 8, 7)
    x = torch.randn(2, c_in, *spatial, dtype=torch.float64, requires_grad=True)
    w = torch.randn(
        c_out, c_in // groups, *(kernel,) * dims, dtype=torch.float64, requires_grad=True
    )
    b = torch.randn(c_out, dtype=torch.float64, requires_grad=True)
    reference = DIRECT[dims](x, w, b, stride, padding, dilation, groups)
    ours = fft_conv(x, w, b, stride, padding, dilation, groups)
    assert ours.shape == reference.shape
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)
    assert_gradients_close(ours, reference, (x, w, b), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("padding_mode", ["zeros", "circular", "reflect", "replicate"])
@pytest.mark.parametrize("depthwise", [True, False])
def test_fftconv2d_is_a_drop_in_for_conv2d(padding_mode, depthwise):
    torch.manual_seed(0)
    channels = 6
    groups = channels if depthwise else 1
    kwargs = dict(padding=7, groups=groups, padding_mode=padding_mode, bias=True)
    reference = nn.Conv2d(channels, channels, 15, **kwargs)
    ours = FFTConv2d(channels, channels, 15, **kwargs)
    assert ours.weight.shape == reference.weight.shape
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, channels, 20, 17)
    scale = reference(x).abs().max()
    assert (ours(x) - reference(x)).abs().max() <= 1e-4 * scale


def test_fftconv1d_long_kernel_matches_conv1d():
    torch.manual_seed(0)
    reference = nn.Conv1d(8, 8, 255, padding="same", groups=8)
    ours = FFTConv1d(8, 8, 255, padding="same", groups=8)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(3, 8, 1000)
    scale = reference(x).abs().max()
    assert (ours(x) - reference(x)).abs().max() <= 1e-4 * scale


def test_fftconv2d_battery():
    check_layer(
        lambda: FFTConv2d(4, 4, 9, padding=4, groups=4, padding_mode="circular"),
        (2, 4, 12, 12),
        gradcheck_shape=(1, 4, 10, 10),
    )


def test_dispatcher_agrees_with_direct_on_both_paths():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 24, 24)
    for kernel in (3, 31):
        w = torch.randn(8, 1, kernel, kernel, requires_grad=True)
        ours = large_kernel_conv(x, w, None, 1, kernel // 2, 1, 8)
        reference = F.conv2d(x, w, None, 1, kernel // 2, 1, 8)
        torch.testing.assert_close(
            ours, reference, rtol=1e-4, atol=1e-4 * reference.abs().max().item()
        )


def test_dispatcher_routes_large_training_kernels_to_fft(monkeypatch):
    calls = []
    # The package re-exports the function fft_conv, which shadows the submodule attribute.
    module = importlib.import_module("convsuite.core_ops.layers.fft_conv")

    original = module.fft_conv
    monkeypatch.setattr(
        module, "fft_conv", lambda *a, **k: calls.append("fft") or original(*a, **k)
    )
    x = torch.randn(1, 4, 16, 16)
    large_kernel_conv(x, torch.randn(4, 1, 3, 3, requires_grad=True), None, 1, 1, 1, 4)
    assert calls == []
    large_kernel_conv(x, torch.randn(4, 1, 17, 17, requires_grad=True), None, 1, 8, 1, 4)
    assert calls == []  # the split route: direct passes, FFT weight gradient
    x = torch.randn(1, 4, 48, 48)  # large enough that no tap of 41 x 41 is cropped
    large_kernel_conv(x, torch.randn(4, 1, 41, 41, requires_grad=True), None, 1, 20, 1, 4)
    assert calls == ["fft"]


def test_routes_follow_the_table():
    assert choose_route(2, True, True, 13) == "split"  # idle sweep: split from k = 9
    assert choose_route(2, True, True, 9) == "split"
    assert choose_route(2, True, True, 7) == "kernel"
    assert choose_route(2, True, True, 5) == "kernel"
    assert choose_route(2, True, True, 3) == "direct"  # the kernels lose at k = 3 (idle)
    assert choose_route(2, True, True, 1) == "direct"
    assert choose_route(2, True, True, 17) == "split"
    assert choose_route(2, True, False, 13) == "direct"
    assert choose_route(2, True, False, 9) == "direct"
    assert choose_route(1, True, False, 13) == "direct"
    assert choose_route(1, True, False, 15) == "channels_last"
    assert choose_route(2, True, False, 17) == "channels_last"
    assert choose_route(1, True, True, 31) == "kernel"
    assert choose_route(1, True, True, 129) == "split"
    assert choose_route(2, False, False, 31) == "fft"
    # Small maps: "kernel" instead of "split" up to SMALL_MAP_POSITIONS (8 x 8), nothing else.
    assert choose_route(2, True, True, 15, positions=64) == "kernel"
    assert choose_route(2, True, True, 15, positions=65) == "split"
    assert choose_route(2, True, True, 3, positions=16) == "direct"
    assert choose_route(2, True, False, 15, positions=64) == "channels_last"
    assert choose_route(1, True, True, 129, positions=40) == "split"
    for key, steps in ROUTES.items():
        extents = [extent for extent, _ in steps]
        assert extents == sorted(extents) and extents[0] == 1, key


@pytest.mark.parametrize("route", ["direct", "channels_last", "kernel", "split", "fft"])
@pytest.mark.parametrize(
    ("dims", "kernel", "padding", "channels_last"),
    [(1, 17, 8, False), (1, 13, 3, False)]
    + [(2, k, p, last) for k, p in ((13, 6), (15, 7), (5, 0)) for last in (False, True)],
)
def test_every_route_equals_direct_in_values_and_gradients(
    route, dims, kernel, padding, channels_last
):
    """Each route (incl. the split route and the zero-padded 13x13 channels-last kernel) is torch's
    stride-1 depthwise convolution, in values and in gradients of input, weight and bias."""
    torch.manual_seed(kernel)
    spatial = (21, 18) if dims == 2 else (200,)
    x = torch.randn(2, 6, *spatial, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(6, 1, *(kernel,) * dims, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    reference = DIRECT[dims](x, w, b, 1, padding, 1, 6)
    with torch.no_grad():
        inference = conv_by_route(route, x, w, b, 1, padding, 1, 6)
    torch.testing.assert_close(inference, reference.detach(), rtol=1e-10, atol=1e-10)
    ours = conv_by_route(route, x, w, b, 1, padding, 1, 6)
    torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)
    assert_gradients_close(ours, reference, (x, w, b), rtol=1e-9, atol=1e-9)


def test_split_route_under_autocast_returns_float32_gradients():
    x = torch.randn(2, 4, 20, 20, requires_grad=True)
    w = torch.randn(4, 1, 17, 17, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv_by_route("split", x, w, None, 1, 8, 1, 4)
    y.float().sum().backward()
    assert x.grad.dtype == w.grad.dtype == torch.float32
    reference = torch.autograd.grad(F.conv2d(x, w, None, 1, 8, 1, 4).sum(), w)[0]
    assert (w.grad - reference).abs().max() <= 2e-2 * reference.abs().max()


def test_fft_conv_learns_a_blur():
    """A depthwise 15x15 FFTConv2d recovers a fixed blur kernel from examples."""
    torch.manual_seed(0)
    target = nn.Conv2d(2, 2, 15, padding=7, groups=2, bias=False)
    model = FFTConv2d(2, 2, 15, padding=7, groups=2, bias=False)
    x = torch.randn(8, 2, 24, 24)
    with torch.no_grad():
        y = target(x)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = F.mse_loss(model(x), y).item()
    for _ in range(150):
        optimizer.zero_grad()
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05 * first


@pytest.mark.parametrize(
    ("dims", "kernel"), [(1, 5), (1, 13), (1, 31), (1, 129), (2, 5), (2, 13), (2, 31)]
)
@pytest.mark.parametrize("needs_grad", [True, False])
def test_dispatcher_matches_direct_for_every_route(dims, kernel, needs_grad):
    """Both routes (including 1-D as channels_last 2-D) give torch's result and gradients."""
    torch.manual_seed(kernel)
    spatial = (24, 20) if dims == 2 else (300,)
    x = torch.randn(2, 6, *spatial, requires_grad=needs_grad)
    w = torch.randn(6, 1, *(kernel,) * dims, requires_grad=needs_grad)
    b = torch.randn(6, requires_grad=needs_grad)
    with torch.set_grad_enabled(needs_grad):
        ours = large_kernel_conv(x, w, b, 2, kernel // 2, 1, 6)
        reference = DIRECT[dims](x, w, b, 2, kernel // 2, 1, 6)
    scale = reference.abs().max().item()
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5 * scale)
    if needs_grad:
        assert_gradients_close(ours, reference, (x, w, b), atol=1e-4, scaled=True)


@pytest.mark.parametrize("needs_grad", [False, True])
def test_dispatcher_crops_taps_that_only_meet_padding(needs_grad):
    """A 17x17 window on a 4x5 map (and a 1-D 31-tap kernel on 6 samples): the outer taps read only
    zero padding; the dispatcher drops them, with torch's values and gradients (zero there)."""
    torch.manual_seed(0)
    for x_shape, w_shape, padding in (
        ((2, 6, 4, 5), (6, 1, 17, 17), 8),
        ((2, 6, 6), (6, 1, 31), 15),
    ):
        x = torch.randn(*x_shape, dtype=torch.float64, requires_grad=needs_grad)
        w = torch.randn(*w_shape, dtype=torch.float64, requires_grad=needs_grad)
        direct = DIRECT[len(x_shape) - 2]
        with torch.set_grad_enabled(needs_grad):
            ours = large_kernel_conv(x, w, None, 1, padding, 1, 6)
            reference = direct(x, w, None, 1, padding, 1, 6)
        torch.testing.assert_close(ours, reference, rtol=1e-10, atol=1e-10)
        if needs_grad:
            assert_gradients_close(ours, reference, (x, w), rtol=1e-10, atol=1e-10)
