"""The numba depthwise kernels (the dispatcher's "kernel" route): torch's depthwise convolution in
values and gradients, and clean fall-backs for what they do not cover."""

from __future__ import annotations

import multiprocessing
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_gradients_close

from convsuite.core_ops.layers.depthwise_kernels import (
    DirectDepthwise,
    depthwise_forward,
    depthwise_weight_grad,
)
from convsuite.core_ops.layers.fft_conv import (
    conv_by_route,
    kernel_fallback_route,
    large_kernel_conv,
)

DIRECT = {1: F.conv1d, 2: F.conv2d}
# The module (the package's ``fft_conv`` name is the function).
fft_conv = sys.modules[conv_by_route.__module__]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(
    ("dims", "kernel", "padding", "spatial", "channels_last"),
    [
        (2, 13, 6, (21, 17), False),
        (2, 13, 6, (21, 17), True),
        (2, 3, 1, (9, 70), False),  # a row longer than one 64-column tile
        (2, 7, 2, (11, 13), True),  # padding < k // 2: a smaller output
        (2, 17, 8, (5, 6), False),  # the window larger than the map
        (1, 31, 15, (1100,), False),  # more than two 512-sample tiles
        (1, 5, 0, (37,), False),
        (1, 13, 4, (9,), False),
    ],
)
def test_kernel_route_equals_torch(dtype, dims, kernel, padding, spatial, channels_last):
    torch.manual_seed(kernel)
    x = torch.randn(3, 5, *spatial, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    w = torch.randn(5, 1, *(kernel,) * dims, dtype=dtype, requires_grad=True)
    reference = DIRECT[dims](x, w, None, 1, padding, 1, 5)
    ours = DirectDepthwise.apply(x, w, padding)
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    scale = reference.abs().max().item()
    assert ours.shape == reference.shape and ours.dtype == dtype
    torch.testing.assert_close(ours, reference, rtol=0, atol=tol * scale)
    assert_gradients_close(ours, reference, (x, w), atol=tol, scaled=True)


@pytest.mark.parametrize("needs", [(True, False), (False, True)])
@pytest.mark.parametrize(("dims", "spatial"), [(1, (600,)), (2, (19, 21))])
def test_one_gradient_alone_equals_torch(needs, dims, spatial):
    """Only the input's or only the weight's gradient (the output gradient then has no padded
    copy for the input gradient, or the weight gradient reads that padded copy in place)."""
    torch.manual_seed(dims)
    x = torch.randn(2, 9, *spatial, dtype=torch.float64, requires_grad=needs[0])
    w = torch.randn(9, 1, *(11,) * dims, dtype=torch.float64, requires_grad=needs[1])
    ours = DirectDepthwise.apply(x, w, 4)
    reference = DIRECT[dims](x, w, None, 1, 4, 1, 9)
    wanted = tuple(t for t, need in zip((x, w), needs, strict=True) if need)
    assert_gradients_close(ours, reference, wanted, atol=1e-12, scaled=True)


def test_functional_forms_match_the_autograd_function():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 12, 10)
    w = torch.randn(4, 1, 5, 5)
    g = torch.randn(2, 4, 12, 10)
    torch.testing.assert_close(depthwise_forward(x, w, 2), F.conv2d(x, w, None, 1, 2, 1, 4))
    xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()
    F.conv2d(xg, wg, None, 1, 2, 1, 4).backward(g)
    torch.testing.assert_close(depthwise_weight_grad(x, g, 5, 2), wg.grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(("dims", "spatial"), [(1, (11,)), (2, (7, 6))])
def test_double_backward_is_torchs(dims, spatial):
    """create_graph=True runs a differentiable backward (torch's), so second derivatives exist."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, *spatial, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, *(3,) * dims, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda a, b: DirectDepthwise.apply(a, b, 1), (x, w))
    (gw,) = torch.autograd.grad(DirectDepthwise.apply(x, w, 1).square().sum(), w, create_graph=True)
    (gw_ref,) = torch.autograd.grad(
        DIRECT[dims](x, w, None, 1, 1, 1, 3).square().sum(), w, create_graph=True
    )
    torch.testing.assert_close(gw, gw_ref)
    torch.testing.assert_close(
        torch.autograd.grad(gw.sum(), x)[0], torch.autograd.grad(gw_ref.sum(), x)[0]
    )


def test_dispatcher_trains_through_the_kernel_route(monkeypatch):
    """large_kernel_conv sends 2-D k = 7 training to the kernels (and bias gradients stay right)."""
    calls = []
    original = DirectDepthwise.apply
    monkeypatch.setattr(DirectDepthwise, "apply", lambda *a: calls.append(a[2]) or original(*a))
    torch.manual_seed(0)
    x = torch.randn(2, 6, 20, 20, requires_grad=True)
    w = torch.randn(6, 1, 7, 7, requires_grad=True)
    b = torch.randn(6, requires_grad=True)
    ours = large_kernel_conv(x, w, b, 1, 3, 1, 6)
    reference = F.conv2d(x, w, b, 1, 3, 1, 6)
    assert calls == [3]  # DirectDepthwise.apply reached once, with padding 3
    assert_gradients_close(ours, reference, (x, w, b), atol=2e-5, scaled=True)


@pytest.mark.parametrize(("size", "kernel_route"), [(8, True), (9, False)])
def test_dispatcher_trains_small_maps_through_the_kernel_route(monkeypatch, size, kernel_route):
    """A 15 x 15 depthwise kernel in training takes the kernels on an 8 x 8 map (the table's
    "split" elsewhere), with torch's values and gradients."""
    calls = []
    original = DirectDepthwise.apply
    monkeypatch.setattr(DirectDepthwise, "apply", lambda *a: calls.append(a[2]) or original(*a))
    torch.manual_seed(size)
    x = torch.randn(2, 6, size, size, requires_grad=True)
    w = torch.randn(6, 1, 15, 15, requires_grad=True)
    ours = large_kernel_conv(x, w, None, 1, 7, 1, 6)
    reference = F.conv2d(x, w, None, 1, 7, 1, 6)
    assert calls == ([7] if kernel_route else [])
    torch.testing.assert_close(ours, reference, rtol=0, atol=2e-5 * reference.abs().max().item())
    assert_gradients_close(ours, reference, (x, w), atol=2e-5, scaled=True)


@pytest.mark.parametrize(
    ("kwargs", "weight_shape"),
    [
        (dict(stride=2, padding=3), (4, 1, 7, 7)),  # stride 2
        (dict(stride=1, padding="same"), (4, 1, 6, 6)),  # even kernel: asymmetric padding
        (dict(stride=1, padding=2, dilation=2), (4, 1, 5, 5)),  # dilation
        (dict(stride=1, padding=3), (4, 1, 7, 5)),  # not square
    ],
)
def test_kernel_route_falls_back_where_it_does_not_apply(kwargs, weight_shape):
    torch.manual_seed(0)
    x = torch.randn(2, 4, 15, 14, requires_grad=True)
    w = torch.randn(*weight_shape, requires_grad=True)
    ours = conv_by_route("kernel", x, w, None, groups=4, **kwargs)
    reference = F.conv2d(x, w, None, groups=4, **kwargs)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    assert_gradients_close(ours, reference, (x, w), rtol=1e-4, atol=1e-4)


def test_kernel_route_under_autocast_runs_the_previous_route(monkeypatch):
    routes = []
    original = fft_conv._direct_conv
    monkeypatch.setattr(fft_conv, "_direct_conv", lambda *a: routes.append(a[-1]) or original(*a))
    x = torch.randn(2, 4, 20, 20, requires_grad=True)
    w = torch.randn(4, 1, 13, 13, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = conv_by_route("kernel", x, w, None, 1, 6, 1, 4)
    assert routes == ["channels_last"]  # 2-D k = 13 training before the kernels
    assert y.dtype == torch.bfloat16  # torch's bf16 direct kernel
    y.float().sum().backward()
    assert x.grad.dtype == w.grad.dtype == torch.float32


@pytest.mark.parametrize(
    ("dims", "extent", "route"),
    [
        (2, 3, "direct"),
        (2, 5, "channels_last"),
        (2, 7, "channels_last"),
        (2, 9, "split"),  # ROUTES' own route: "kernel" there only on small maps
        (2, 13, "split"),
        (2, 15, "split"),
        (2, 16, "split"),
        (1, 5, "channels_last"),
        (1, 13, "channels_last"),
        (1, 15, "direct"),
        (1, 31, "split"),
        (1, 127, "split"),
        (3, 7, "split"),
    ],
)
def test_kernel_fallback_is_the_previous_route(dims, extent, route):
    assert kernel_fallback_route(dims, extent) == route


@pytest.mark.parametrize("kernel", [9, 13])
def test_a_small_bf16_map_trains_by_split_as_before_the_small_map_rule(monkeypatch, kernel):
    """ROUTES says "split" at k = 9-14 and the small-map rule "kernel"; where the kernels cannot
    run (bf16) the dispatcher keeps "split", not the "channels_last" ROUTES had there before
    the kernels."""
    calls = []
    split = fft_conv._SplitDepthwise.apply
    monkeypatch.setattr(DirectDepthwise, "apply", None)  # must not be reached
    monkeypatch.setattr(fft_conv._SplitDepthwise, "apply", lambda *a: calls.append(a) or split(*a))
    x = torch.randn(2, 4, 8, 8, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(4, 1, kernel, kernel, dtype=torch.bfloat16, requires_grad=True)
    y = large_kernel_conv(x, w, None, 1, kernel // 2, 1, 4)
    assert len(calls) == 1 and y.shape == x.shape


@pytest.mark.parametrize(("dims", "kernel"), [(1, 13), (1, 31), (2, 3), (2, 9), (2, 15)])
def test_kernel_route_falls_back_to_the_previous_route_in_values(monkeypatch, dims, kernel):
    """bf16 (no kernels): the previous route, torch's values and gradients."""
    torch.manual_seed(kernel)
    x = torch.randn(2, 4, *(24,) * dims, dtype=torch.bfloat16, requires_grad=True)
    w = torch.randn(4, 1, *(kernel,) * dims, dtype=torch.bfloat16, requires_grad=True)
    monkeypatch.setattr(DirectDepthwise, "apply", None)  # must not be reached
    ours = conv_by_route("kernel", x, w, None, 1, kernel // 2, 1, 4)
    reference = DIRECT[dims](x, w, None, 1, kernel // 2, 1, 4)
    torch.testing.assert_close(ours, reference, rtol=2e-2, atol=2e-2 * reference.abs().max().item())
    assert_gradients_close(ours, reference, (x, w), rtol=5e-2, atol=5e-2, scaled=True)


@pytest.mark.parametrize("dims", [1, 2])
def test_kernel_route_reports_a_wrong_channel_count_as_torch_does(dims):
    """An input with other channels than the weight never reaches the kernels (they would read
    past the weight): torch's own error."""
    x = torch.randn(2, 6, *(12,) * dims, requires_grad=True)
    w = torch.randn(4, 1, *(5,) * dims, requires_grad=True)
    with pytest.raises(RuntimeError):
        DIRECT[dims](x, w, None, 1, 2, 1, 4)
    with pytest.raises(RuntimeError):
        conv_by_route("kernel", x, w, None, 1, 2, 1, 4)
    with pytest.raises(RuntimeError):
        large_kernel_conv(x, w, None, 1, 2, 1, 4)


def _one_thread() -> None:
    torch.set_num_threads(1)  # as DataLoader workers do (torch's own OpenMP pool after fork)


def _train_in_child(_: int) -> tuple[list[str], int, float]:
    """Trains one 2-D k = 5 depthwise convolution; returns the routes taken, the number of
    warnings and the weight gradient's size."""
    routes: list[str] = []
    direct, kernel = fft_conv._direct_conv, DirectDepthwise.apply
    fft_conv._direct_conv = lambda *a: routes.append(a[-1]) or direct(*a)
    DirectDepthwise.apply = lambda *a: routes.append("kernel") or kernel(*a)
    try:
        x = torch.randn(2, 4, 12, 12, requires_grad=True)
        w = torch.randn(4, 1, 5, 5, requires_grad=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            large_kernel_conv(x, w, None, 1, 2, 1, 4).sum().backward()
            large_kernel_conv(x, w, None, 1, 2, 1, 4)
    finally:
        fft_conv._direct_conv, DirectDepthwise.apply = direct, kernel
    return routes, len(caught), float(w.grad.abs().sum())


def test_forked_child_of_a_kernel_user_falls_back_to_the_previous_route():
    """numba's OpenMP pool terminates a fork()ed child that enters it after the parent did: the
    dispatcher must not send such a child to the kernels (a DataLoader worker, a process pool),
    and says so once."""
    x = torch.randn(2, 4, 12, 12, requires_grad=True)
    w = torch.randn(4, 1, 5, 5, requires_grad=True)
    DirectDepthwise.apply(x, w, 2).sum().backward()  # the parent runs the kernels first
    context = multiprocessing.get_context("fork")
    with context.Pool(1, initializer=_one_thread) as pool:
        routes, warned, grad = pool.map_async(_train_in_child, [0]).get(timeout=60)[0]
    assert routes == ["channels_last", "channels_last"]
    assert warned == 1
    assert grad > 0
