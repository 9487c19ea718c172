"""DCLS layers: equal to the authors' `dcls` package in output and gradients, and sound on their own."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import check_layer
from DCLS.construct import modules as reference_modules

from convsuite.core_ops.layers.dcls import DCLSConv1d, DCLSConv2d, DCLSConv3d, construct_kernel

OURS = {1: DCLSConv1d, 2: DCLSConv2d, 3: DCLSConv3d}


def _reference(dims: int, *args, **kwargs):
    logging.disable(
        logging.WARNING
    )  # the reference logs CUDA-kernel warnings on every construction
    try:
        if dims == 2:
            kwargs["use_implicit_gemm"] = False
        return getattr(reference_modules, f"Dcls{dims}d")(*args, **kwargs)
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("version", ["v1", "gauss"])
@pytest.mark.parametrize(
    ("c_in", "c_out", "groups", "kernel_count", "window"),
    [(4, 4, 4, 5, 7), (4, 6, 2, 3, 5), (3, 2, 1, 4, 9)],
)
@pytest.mark.parametrize("spread", [0.7, 3.0])  # 3.0 puts many taps exactly on the window edge
def test_state_dict_from_reference_gives_same_output_and_gradients(
    dims, version, c_in, c_out, groups, kernel_count, window, spread
):
    torch.manual_seed(dims * 100 + window)
    kwargs = dict(padding=window // 2, dilated_kernel_size=window, groups=groups, version=version)
    reference = _reference(dims, c_in, c_out, kernel_count, **kwargs).double()
    with torch.no_grad():
        reference.P.normal_(0, spread)
        reference.clamp_parameters()
        if reference.SIG is not None:
            reference.SIG.uniform_(0, 1)
    ours = OURS[dims](c_in, c_out, kernel_count, **kwargs).double()
    ours.load_state_dict(reference.state_dict())
    spatial = (11,) * dims if dims < 3 else (7, 8, 6)
    x = torch.randn(2, c_in, *spatial, dtype=torch.float64, requires_grad=True)
    y_ref, y_ours = reference(x), ours(x)
    torch.testing.assert_close(y_ours, y_ref, rtol=1e-9, atol=1e-9)
    grad_out = torch.randn_like(y_ref)
    expected = torch.autograd.grad(y_ref, [x, *reference.parameters()], grad_out)
    got = torch.autograd.grad(y_ours, [x, *ours.parameters()], grad_out)
    for g_ours, g_ref in zip(got, expected, strict=True):
        torch.testing.assert_close(g_ours, g_ref, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("version", ["v1", "gauss"])
def test_float32_depthwise_convnext_setting_matches_reference(version):
    """DCLS-ConvNeXt's mixer (34 taps in a 17x17 window, depthwise) in float32, via the FFT path."""
    torch.manual_seed(0)
    kwargs = dict(padding=8, dilated_kernel_size=17, groups=16, version=version)
    reference = _reference(2, 16, 16, 34, **kwargs)
    ours = DCLSConv2d(16, 16, 34, **kwargs)
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 16, 20, 20, requires_grad=True)
    y_ref, y_ours = reference(x), ours(x)
    assert (y_ours - y_ref).abs().max() <= 1e-4 * y_ref.abs().max()
    grad_out = torch.randn_like(y_ref)
    for g_ours, g_ref in zip(
        torch.autograd.grad(y_ours, [x, *ours.parameters()], grad_out),
        torch.autograd.grad(y_ref, [x, *reference.parameters()], grad_out),
        strict=True,
    ):
        assert (g_ours - g_ref).abs().max() <= 1e-4 * g_ref.abs().max()


def test_parameter_names_and_shapes_match_reference():
    ours = DCLSConv2d(8, 12, 5, dilated_kernel_size=9, groups=4, version="gauss")
    shapes = {name: tuple(p.shape) for name, p in ours.named_parameters()}
    assert shapes == {
        "weight": (12, 2, 5),
        "P": (2, 12, 2, 5),
        "SIG": (2, 12, 2, 5),
        "bias": (12,),
    }
    assert DCLSConv2d(8, 8, 5, version="v1").SIG is None


@pytest.mark.parametrize("version", ["v1", "gauss"])
def test_non_square_window_places_taps_along_the_right_axis(version):
    """One tap at integer offset (dx=+2, dy=-1) of a 5x9 window lands at row 2-1, column 4+2."""
    weight = torch.ones(1, 1, 1)
    positions = torch.tensor([2.0, -1.0]).reshape(2, 1, 1, 1)  # P[0] is x (columns), P[1] is y
    sigma = torch.full_like(positions, 0.0)
    kernel = construct_kernel(weight, positions, (5, 9), version, sigma)[0, 0]
    assert kernel.shape == (5, 9)
    assert tuple(torch.nonzero(kernel == kernel.max())[0].tolist()) == (1, 6)


def test_gaussian_kernel_has_no_subnormal_entries():
    layer = DCLSConv2d(32, 32, 26, dilated_kernel_size=17, padding=8, groups=32, version="gauss")
    kernel = layer.dense_kernel().detach()
    tiny = torch.finfo(kernel.dtype).tiny
    assert not ((kernel != 0) & (kernel.abs() < tiny)).any()


def test_positions_are_clamped_inside_the_window():
    layer = DCLSConv2d(2, 2, 3, dilated_kernel_size=5, groups=2, version="v1")
    with torch.no_grad():
        layer.P.fill_(40.0)  # far outside: forward clamps to the window edge
    kernel = layer.dense_kernel().detach()
    assert torch.count_nonzero(kernel[..., :-1, :-1]) == 0  # all mass sits on the last row/column
    assert kernel.abs().sum() > 0


@pytest.mark.parametrize("version", ["v1", "gauss"])
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_battery(version, dims):
    shape = {1: (2, 4, 13), 2: (2, 4, 10, 9), 3: (1, 4, 6, 7, 5)}[dims]
    check_layer(
        lambda: OURS[dims](4, 4, 3, padding=2, dilated_kernel_size=5, groups=2, version=version),
        shape,
    )


def test_taps_move_to_fit_a_shifted_delta():
    """Learnable spacings: a single-tap kernel learns to sit at an off-centre delta."""
    torch.manual_seed(0)
    target = torch.zeros(1, 1, 9, 9)
    target[0, 0, 2, 6] = 1.0  # dy=-2, dx=+2
    layer = DCLSConv2d(1, 1, 1, padding=4, dilated_kernel_size=9, bias=False, version="gauss")
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.P.zero_()
    x = torch.randn(16, 1, 24, 24)
    y = F.conv2d(x, target, padding=4)
    optimizer = torch.optim.Adam(layer.parameters(), lr=0.05)
    first = F.mse_loss(layer(x), y).item()
    for _ in range(200):
        optimizer.zero_grad()
        loss = F.mse_loss(layer(x), y)
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05 * first
    torch.testing.assert_close(
        layer.P.detach().flatten(), torch.tensor([2.0, -2.0]), atol=0.15, rtol=0
    )
