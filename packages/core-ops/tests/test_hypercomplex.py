"""PH layers: Kronecker-sum weight, 1/n parameters, and the HyperNets defects we must not have."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_learns, check_layer
from torch import nn

from convsuite.core_ops.layers.hypercomplex import (
    PHConv1d,
    PHConv2d,
    PHConv3d,
    PHLinear,
    kronecker_sum,
)

PH = {1: PHConv1d, 2: PHConv2d, 3: PHConv3d}
REAL = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def _loop_weight(layer: nn.Module) -> torch.Tensor:
    """The obvious reference: an explicit Python loop of torch.kron over the n terms."""
    a, f = layer.A.detach(), layer.F.detach()
    kernel_axes = [1] * (f.dim() - 3)
    total = torch.zeros(())
    for i in range(layer.n):
        # torch.kron pairs axes one by one: give A_i unit kernel axes so they pair with F_i's.
        total = total + torch.kron(a[i].reshape(*a[i].shape, *kernel_axes), f[i])
    return total


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_weight_equals_explicit_kron_loop(dims: int, n: int) -> None:
    torch.manual_seed(0)
    layer = PH[dims](n, 2 * n, 3 * n, 3)
    expected = _loop_weight(layer)
    assert layer.weight.shape == (3 * n, 2 * n, *(3,) * dims)
    torch.testing.assert_close(layer.weight, expected)


def test_linear_weight_equals_kron_loop() -> None:
    torch.manual_seed(0)
    layer = PHLinear(4, 8, 12)
    expected = sum(torch.kron(layer.A[i], layer.F[i]) for i in range(4))
    torch.testing.assert_close(layer.weight, expected)
    x = torch.randn(5, 8)
    torch.testing.assert_close(layer(x), x @ expected.T + layer.bias)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_forward_equals_real_conv_with_the_built_weight(dims: int) -> None:
    torch.manual_seed(0)
    kw = dict(stride=2, padding=1, dilation=2, groups=2)
    layer = PH[dims](2, 8, 6, 3, **kw)
    real = REAL[dims](8, 6, 3, **kw)
    with torch.no_grad():
        real.weight.copy_(layer.weight)
        real.bias.copy_(layer.bias)
    x = torch.randn(2, 8, *(9,) * dims)
    torch.testing.assert_close(layer(x), real(x))


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [2, "same"])
def test_padding_modes_match_torch(mode: str, padding: int | str) -> None:
    torch.manual_seed(0)
    layer = PHConv2d(2, 4, 4, (3, 4), padding=padding, padding_mode=mode)
    real = nn.Conv2d(4, 4, (3, 4), padding=padding, padding_mode=mode)
    with torch.no_grad():
        real.weight.copy_(layer.weight)
        real.bias.copy_(layer.bias)
    x = torch.randn(1, 4, 7, 8)
    torch.testing.assert_close(layer(x), real(x))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_n1_with_unit_algebra_is_a_plain_conv(dims: int) -> None:
    torch.manual_seed(0)
    layer = PH[dims](1, 3, 5, 3, padding=1)
    real = REAL[dims](3, 5, 3, padding=1)
    with torch.no_grad():
        layer.A.fill_(1.0)
        layer.F.copy_(real.weight.unsqueeze(0))
        layer.bias.copy_(real.bias)
    x = torch.randn(2, 3, *(6,) * dims)
    torch.testing.assert_close(layer(x), real(x))


@pytest.mark.parametrize(
    ("n", "c_in", "c_out", "k"), [(2, 8, 16, 3), (4, 16, 32, 3), (4, 64, 64, 5)]
)
@pytest.mark.parametrize("bias", [True, False])
def test_parameter_count_is_one_nth(n: int, c_in: int, c_out: int, k: int, bias: bool) -> None:
    layer = PHConv2d(n, c_in, c_out, k, bias=bias)
    real = nn.Conv2d(c_in, c_out, k, bias=bias)
    count = sum(p.numel() for p in layer.parameters())
    assert count == n**3 + c_in * c_out * k * k // n + (c_out if bias else 0)
    real_weights = real.weight.numel()
    bias_count = c_out if bias else 0
    assert count - (real_weights / n + bias_count) == n**3
    lin = PHLinear(n, c_in, c_out, bias=bias)
    assert sum(p.numel() for p in lin.parameters()) == n**3 + c_in * c_out // n + bias_count


def test_bias_is_applied() -> None:
    torch.manual_seed(0)
    layer = PHConv2d(4, 8, 8, 3, padding=1)
    x = torch.randn(2, 8, 6, 6)
    before = layer(x)
    delta = torch.randn(8)
    with torch.no_grad():
        layer.bias.add_(delta)
    after = layer(x)
    torch.testing.assert_close(after - before, delta.view(1, -1, 1, 1).expand_as(before))
    lin = PHLinear(2, 4, 6)
    y0 = lin(x[:, :4, 0, 0])
    with torch.no_grad():
        lin.bias.add_(delta[:6])
    torch.testing.assert_close(lin(x[:, :4, 0, 0]) - y0, delta[:6].expand_as(y0))


@pytest.mark.parametrize("make", [lambda: PHConv2d(4, 8, 8, 3), lambda: PHLinear(4, 8, 8)])
def test_algebra_and_filters_are_state_dict_parameters(make) -> None:
    torch.manual_seed(0)
    layer = make()
    names = {name for name, _ in layer.named_parameters()}
    assert names == {"A", "F", "bias"}
    assert set(layer.state_dict()) == names
    x = torch.randn(2, 8, 5, 5) if isinstance(layer, PHConv2d) else torch.randn(3, 8)
    torch.manual_seed(1)
    fresh = make()
    assert not torch.allclose(fresh(x), layer(x))
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x), layer(x), rtol=0, atol=0)
    # Gradients reach both factors.
    layer(x).square().sum().backward()
    assert layer.A.grad.abs().sum() > 0 and layer.F.grad.abs().sum() > 0


def test_init_matches_real_conv_scale() -> None:
    torch.manual_seed(0)
    ph = PHConv2d(4, 64, 64, 3)
    real = nn.Conv2d(64, 64, 3)
    ratio = ph.weight.std() / real.weight.std()
    assert 0.8 < ratio < 1.25, ratio
    x = torch.randn(4, 64, 8, 8)
    out_ratio = ph(x).std() / real(x).std()
    assert 0.7 < out_ratio < 1.4, out_ratio


def test_runs_on_cpu_and_follows_dtype() -> None:
    layer = PHConv2d(2, 4, 4, 3).to(torch.float64)
    assert layer.A.device.type == "cpu"
    assert layer(torch.randn(1, 4, 5, 5, dtype=torch.float64)).dtype == torch.float64


def test_bad_channels_raise_clear_error() -> None:
    with pytest.raises(ValueError, match="divisible by n"):
        PHConv2d(4, 6, 8, 3)
    with pytest.raises(ValueError, match="divisible by n"):
        PHConv1d(4, 8, 6, 3)
    with pytest.raises(ValueError, match="divisible by n"):
        PHConv2d(4, 8, 8, 3, groups=4)  # in/groups = 2 not divisible by 4
    with pytest.raises(ValueError, match="divisible by n"):
        PHLinear(3, 8, 9)
    with pytest.raises(ValueError, match="groups"):
        PHConv3d(2, 6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="padding_mode"):
        PHConv2d(2, 4, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="spatial"):
        PHConv2d(2, 4, 4, 3)(torch.randn(1, 4, 5))
    with pytest.raises(ValueError, match="algebra"):
        kronecker_sum(torch.randn(2, 3, 3), torch.randn(2, 1, 1))


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_check_layer_battery_conv(dims: int) -> None:
    check_layer(
        lambda: PH[dims](2, 4, 6, 3, padding=1, padding_mode="reflect" if dims == 2 else "zeros"),
        (2, 4, *(6,) * dims),
        gradcheck_shape=(1, 4, *(4,) * dims),
    )


def test_check_layer_battery_linear() -> None:
    check_layer(lambda: PHLinear(4, 8, 12), (3, 8))


def test_tiny_ph_net_learns() -> None:
    """A 2-layer PHConv net learns a fixed random 3x3 convolution (a linear-plus-ReLU target)."""
    torch.manual_seed(0)
    target = nn.Conv2d(4, 4, 3, padding=1)
    batches = []
    for _ in range(4):
        x = torch.randn(8, 4, 8, 8)
        with torch.no_grad():
            batches.append((x, F.relu(target(x))))
    model = nn.Sequential(
        PHConv2d(2, 4, 16, 3, padding=1), nn.ReLU(), PHConv2d(2, 16, 4, 1), nn.ReLU()
    )
    assert_learns(model, batches, F.mse_loss, epochs=30, lr=1e-2, min_drop=0.1)
