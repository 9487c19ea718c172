"""Complex layers: against torch's complex convolution and the 4-real-conv form, whitening BN."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_learns, check_layer
from torch import nn

from convsuite.core_ops.layers.complex import (
    ComplexBatchNorm2d,
    ComplexConv2d,
    CReLU,
    ModReLU,
    PseudoComplexConv2d,
    channels_to_complex,
    complex_to_channels,
)

CONV_CASES = [
    dict(kernel_size=3, padding=1),
    dict(kernel_size=(3, 2), stride=2, padding=(1, 0), dilation=(1, 2)),
    dict(kernel_size=3, padding="same", groups=2),
    dict(kernel_size=1, groups=2, bias=False),
]


class RealView(nn.Module):
    """A complex layer seen through the pseudo-complex layout, so the real battery applies."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return complex_to_channels(self.layer(channels_to_complex(x)))


def _crandn(*shape: int, dtype: torch.dtype = torch.complex64) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


def _torch_complex_conv(layer: ComplexConv2d, z: torch.Tensor) -> torch.Tensor:
    """Reference 1: torch's own complex convolution on the complex weight."""
    weight = torch.complex(layer.weight_real, layer.weight_imag)
    bias = None if layer.bias_real is None else torch.complex(layer.bias_real, layer.bias_imag)
    return F.conv2d(z, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)


def _four_real_convs(layer: ComplexConv2d, z: torch.Tensor) -> torch.Tensor:
    """Reference 2: the textbook form, (Wr*xr - Wi*xi) + i (Wi*xr + Wr*xi) + b."""
    kw = dict(
        stride=layer.stride, padding=layer.padding, dilation=layer.dilation, groups=layer.groups
    )
    wr, wi = layer.weight_real, layer.weight_imag
    real = F.conv2d(z.real, wr, **kw) - F.conv2d(z.imag, wi, **kw)
    imag = F.conv2d(z.real, wi, **kw) + F.conv2d(z.imag, wr, **kw)
    if layer.bias_real is not None:
        real = real + layer.bias_real.view(1, -1, 1, 1)
        imag = imag + layer.bias_imag.view(1, -1, 1, 1)
    return torch.complex(real, imag)


def test_layout_round_trip() -> None:
    z = _crandn(2, 3, 4, 5)
    x = complex_to_channels(z)
    assert x.shape == (2, 6, 4, 5) and x.dtype == torch.float32
    torch.testing.assert_close(x[:, :3], z.real)
    torch.testing.assert_close(x[:, 3:], z.imag)
    torch.testing.assert_close(channels_to_complex(x), z, rtol=0, atol=0)
    y = torch.randn(2, 8, 7, dtype=torch.float64)
    assert channels_to_complex(y).dtype == torch.complex128
    torch.testing.assert_close(complex_to_channels(channels_to_complex(y)), y, rtol=0, atol=0)
    assert channels_to_complex(y.bfloat16()).dtype == torch.complex64
    with pytest.raises(ValueError, match="even"):
        channels_to_complex(torch.randn(1, 3, 4))
    with pytest.raises(ValueError, match="complex"):
        complex_to_channels(torch.randn(1, 2, 4))


@pytest.mark.parametrize("kw", CONV_CASES)
def test_complex_conv_matches_torch_complex_conv_and_four_real_convs(kw: dict) -> None:
    torch.manual_seed(0)
    layer = ComplexConv2d(4, 6, **kw)
    if layer.bias_real is not None:
        with torch.no_grad():  # zero-initialized: give the bias values so it is tested
            layer.bias_real.normal_()
            layer.bias_imag.normal_()
    z = _crandn(2, 4, 9, 8)
    out = layer(z)
    assert out.dtype == torch.complex64
    torch.testing.assert_close(out, _torch_complex_conv(layer, z), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out, _four_real_convs(layer, z), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", CONV_CASES)
def test_pseudo_complex_equals_complex_with_same_weights(kw: dict) -> None:
    torch.manual_seed(0)
    cplx = ComplexConv2d(4, 6, **kw)
    pseudo = PseudoComplexConv2d(4, 6, **kw)
    pseudo.load_state_dict(cplx.state_dict())  # same keys: one set of weights for both forms
    z = _crandn(2, 4, 9, 8)
    x = complex_to_channels(z)
    out = pseudo(x)
    assert out.shape[1] == 12 and not out.is_complex()
    torch.testing.assert_close(out, complex_to_channels(cplx(z)), rtol=0, atol=0)
    # Gradients agree too.
    out.square().sum().backward()
    complex_to_channels(cplx(z)).square().sum().backward()
    for (name, p), q in zip(pseudo.named_parameters(), cplx.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_pseudo_complex_runs_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    layer = PseudoComplexConv2d(8, 8, 3, padding=1)
    x = torch.randn(2, 16, 12, 12)
    reference = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer(x)
    assert low.dtype == torch.bfloat16
    error = (low.float() - reference).abs().max() / reference.abs().max()
    assert error < 3e-2
    cplx = ComplexConv2d(8, 8, 3, padding=1)
    cplx.load_state_dict(layer.state_dict())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_c = cplx(channels_to_complex(x))
    assert low_c.dtype == torch.complex64
    torch.testing.assert_close(complex_to_channels(low_c), low.float())


def test_complex_conv_rejects_real_input() -> None:
    with pytest.raises(ValueError, match="complex"):
        ComplexConv2d(2, 2, 3)(torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match="real then imaginary"):
        PseudoComplexConv2d(2, 2, 3)(torch.randn(1, 2, 5, 5))
    with pytest.raises(ValueError, match="groups"):
        ComplexConv2d(3, 4, 3, groups=2)


def test_complex_conv_init_scale() -> None:
    """Complex Glorot: E|W|^2 = 2 / (fan_in + fan_out)."""
    torch.manual_seed(0)
    layer = ComplexConv2d(32, 64, 3)
    power = (layer.weight_real.square() + layer.weight_imag.square()).mean()
    expected = 2 / (32 * 9 + 64 * 9)
    assert abs(power / expected - 1) < 0.05


def _covariance(z: torch.Tensor) -> torch.Tensor:
    """Per-channel mean (C, 2) and 2x2 covariance (C, 2, 2) of (real, imag), population form."""
    parts = torch.stack([z.real, z.imag], dim=-1).transpose(0, 1).reshape(z.shape[1], -1, 2)
    centered = parts - parts.mean(1, keepdim=True)
    return parts.mean(1), centered.transpose(1, 2) @ centered / parts.shape[1]


def _correlated_batch(n: int = 16, c: int = 3, seed: int = 0) -> torch.Tensor:
    """Complex data with per-channel offsets and strongly correlated, unequal real/imag parts."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(2, n, c, 8, 8, generator=g)
    real = 3.0 * a + 2.0
    imag = 1.5 * a + 0.5 * b - 1.0
    return torch.complex(real, imag)


def test_batchnorm_training_whitens() -> None:
    z = _correlated_batch()
    _, cov_in = _covariance(z)
    assert cov_in[:, 0, 1].abs().min() > 1.0  # input really is correlated

    bn = ComplexBatchNorm2d(3, affine=False).train()
    mean, cov = _covariance(bn(z))
    torch.testing.assert_close(mean, torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(cov, torch.eye(2).expand(3, 2, 2), atol=1e-3, rtol=0)

    # Paper's init Gamma = I / sqrt(2): uncorrelated parts of variance 1/2, E|y|^2 = 1.
    bn_affine = ComplexBatchNorm2d(3).train()
    mean, cov = _covariance(bn_affine(z))
    torch.testing.assert_close(mean, torch.zeros(3, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(cov, 0.5 * torch.eye(2).expand(3, 2, 2), atol=1e-3, rtol=0)


def test_batchnorm_affine_applies_gamma_and_beta() -> None:
    z = _correlated_batch()
    bn = ComplexBatchNorm2d(3)
    plain = ComplexBatchNorm2d(3, affine=False)
    with torch.no_grad():
        bn.weight.normal_()
        bn.bias.normal_()
    whitened = plain(z)
    g_rr, g_ri, g_ii = bn.weight.detach().view(3, 3, 1, 1)
    beta = torch.complex(bn.bias[0], bn.bias[1]).detach().view(1, 3, 1, 1)
    expected = (
        torch.complex(
            g_rr * whitened.real + g_ri * whitened.imag, g_ri * whitened.real + g_ii * whitened.imag
        )
        + beta
    )
    torch.testing.assert_close(bn(z), expected, rtol=1e-5, atol=1e-5)


def test_batchnorm_running_stats_and_eval() -> None:
    bn = ComplexBatchNorm2d(3, momentum=None)  # cumulative average: equals the data's statistics
    batches = [_correlated_batch(seed=s) for s in range(3)]
    for z in batches:
        bn.train()(z)
    assert int(bn.num_batches_tracked) == 3
    count = batches[0].numel() // 3
    expected_mean = torch.stack([_covariance(z)[0] for z in batches]).mean(0)
    expected_cov = torch.stack([_covariance(z)[1] for z in batches]).mean(0) * count / (count - 1)
    torch.testing.assert_close(bn.running_mean, expected_mean.T)
    torch.testing.assert_close(
        bn.running_covar, expected_cov.reshape(3, 4)[:, [0, 1, 3]].T, rtol=1e-5, atol=1e-5
    )

    # Eval uses the running statistics: a shifted, rescaled batch is NOT re-centred.
    bn.eval()
    test = 2.0 * batches[0] + (5.0 + 1.0j)
    out = bn(test)
    mean, _ = _covariance(out)
    assert mean.abs().min() > 1.0
    batch_stats = copy.deepcopy(bn)
    batch_stats.track_running_stats = False  # batch statistics instead: re-centres
    assert _covariance(batch_stats(test))[0].abs().max() < 1e-4

    # Momentum update: running = (1 - m) running + m batch.
    bn2 = ComplexBatchNorm2d(3, momentum=0.3).train()
    bn2(batches[0])
    torch.testing.assert_close(bn2.running_mean, 0.3 * _covariance(batches[0])[0].T)


def test_batchnorm_eval_matches_manual_whitening() -> None:
    bn = ComplexBatchNorm2d(2, affine=False)
    with torch.no_grad():
        bn.running_mean.copy_(torch.tensor([[1.0, -2.0], [0.5, 3.0]]))
        bn.running_covar.copy_(torch.tensor([[4.0, 2.0], [1.0, -0.5], [2.0, 1.0]]))
    z = _crandn(3, 2, 4, 4, dtype=torch.complex64)
    out = bn.eval()(z)
    for c in range(2):
        v = torch.tensor(
            [
                [bn.running_covar[0, c], bn.running_covar[1, c]],
                [bn.running_covar[1, c], bn.running_covar[2, c]],
            ],
            dtype=torch.float64,
        ) + bn.eps * torch.eye(2, dtype=torch.float64)
        evals, evecs = torch.linalg.eigh(v)
        inv_sqrt = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
        parts = (
            torch.stack([z[:, c].real, z[:, c].imag], -1).double() - bn.running_mean[:, c].double()
        )
        expected = parts @ inv_sqrt.T
        torch.testing.assert_close(out[:, c].real.double(), expected[..., 0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out[:, c].imag.double(), expected[..., 1], rtol=1e-5, atol=1e-5)


def test_modrelu() -> None:
    act = ModReLU(2)
    with torch.no_grad():
        act.bias.copy_(torch.tensor([-0.5, 0.25]))
    z = torch.tensor([[0.3 + 0.4j, 0.0, 3.0 - 4.0j], [0.0 + 0.0j, 1.0j, -2.0]])
    z = z.reshape(1, 2, 3).clone().requires_grad_()
    out = act(z)
    magnitude = z.detach().abs()
    bias = act.bias.detach().view(1, 2, 1)
    expected = torch.where(
        magnitude > 0, F.relu(magnitude + bias) * z.detach() / magnitude.clamp_min(1e-30), 0
    )
    torch.testing.assert_close(out, expected)
    assert out[0, 0, 0] == 0  # |z| = 0.5 < 0.5 + b = 0: switched off
    assert out[0, 1, 0] == 0  # z = 0 stays 0 even with a positive bias
    torch.testing.assert_close(out.angle()[0, 0, 2], z.detach().angle()[0, 0, 2])  # phase kept
    out.abs().sum().backward()
    assert torch.isfinite(torch.view_as_real(z.grad)).all()
    assert torch.isfinite(act.bias.grad).all()


def test_crelu() -> None:
    z = _crandn(2, 3, 4)
    out = CReLU()(z)
    torch.testing.assert_close(out.real, F.relu(z.real))
    torch.testing.assert_close(out.imag, F.relu(z.imag))
    with pytest.raises(ValueError, match="complex"):
        CReLU()(torch.randn(2, 3))


@pytest.mark.parametrize(
    ("make", "complex_shape"),
    [
        (lambda: ComplexConv2d(2, 4, 3, padding=1, groups=2), (2, 2, 5, 5)),
        (lambda: ComplexBatchNorm2d(3), (4, 3, 3, 3)),
        (lambda: ModReLU(3), (2, 3, 4, 4)),
        (lambda: CReLU(), (2, 3, 4, 4)),
    ],
)
def test_battery_complex_layers(make, complex_shape) -> None:
    """check_layer through the real view, then a direct complex128 gradcheck."""
    n, c, *spatial = complex_shape

    check_layer(lambda: RealView(make()), (n, 2 * c, *spatial))
    torch.manual_seed(0)
    layer = make().double()
    with torch.no_grad():  # move off the exactly-zero/affine-symmetric init
        for p in layer.parameters():
            p.add_(0.1 * torch.randn_like(p))
    z = torch.randn(*complex_shape, dtype=torch.complex128, requires_grad=True)
    assert layer(z).dtype == torch.complex128
    assert torch.autograd.gradcheck(layer, (z,), eps=1e-6, atol=1e-4)


def test_battery_batchnorm_train_mode() -> None:
    """check_layer evaluates in eval mode; gradcheck the batch-statistics path explicitly."""
    torch.manual_seed(0)
    layer = ComplexBatchNorm2d(2, track_running_stats=False).double()
    z = torch.randn(3, 2, 3, 3, dtype=torch.complex128, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (z,), eps=1e-6, atol=1e-4)
    check_layer(lambda: RealView(ComplexBatchNorm2d(2, track_running_stats=False)), (3, 4, 3, 3))


def test_battery_pseudo_complex_conv() -> None:
    check_layer(lambda: PseudoComplexConv2d(2, 3, 3, padding=1), (2, 4, 6, 6))


def test_complex_net_learns_a_fixed_complex_filter() -> None:
    torch.manual_seed(0)
    target_w = _crandn(2, 2, 3, 3)
    batches = []
    for _ in range(4):
        z = _crandn(8, 2, 10, 10)
        batches.append((z, F.conv2d(z, target_w, padding=1)))

    def loss(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (out - target).abs().square().mean()

    conv = ComplexConv2d(2, 2, 3, padding=1)
    assert_learns(conv, batches, loss, epochs=40, lr=3e-2, min_drop=1e-3)
    net = nn.Sequential(
        ComplexConv2d(2, 8, 3, padding=1),
        ComplexBatchNorm2d(8),
        ModReLU(8),
        ComplexConv2d(8, 2, 1),
    )
    assert_learns(net, batches, loss, epochs=40, lr=1e-2, min_drop=0.05)


@pytest.mark.parametrize("groups", [1, 2])
def test_cached_inference_weight_serves_bf16_and_leaves_float32_alone(groups: int) -> None:
    torch.manual_seed(0)
    layer = PseudoComplexConv2d(8, 6, 3, padding=(2, 1), dilation=(2, 1), groups=groups).eval()
    x = torch.randn(2, 16, 11, 9)
    with torch.no_grad():
        before = layer(x)
        state = copy.deepcopy(layer.state_dict())
        layer.cache_inference_weight(torch.bfloat16)
        # float32 input: the same computation as before, bit for bit; parameters untouched.
        assert torch.equal(layer(x), before)
        assert layer.weight_real.dtype == torch.float32
        assert layer.state_dict().keys() == state.keys()
        assert all(torch.equal(layer.state_dict()[k], v) for k, v in state.items())
        assert layer.inference_weight.is_contiguous(memory_format=torch.channels_last)
        low = layer(x.to(torch.bfloat16, memory_format=torch.channels_last))
    assert low.dtype == torch.bfloat16 and low.shape == before.shape
    # bf16 inputs and weights (8-bit mantissas), float32 accumulation in oneDNN: within 2%.
    error = (low.float() - before).abs().max() / before.abs().max()
    assert 0 < error < 2e-2
    with torch.no_grad():
        layer.weight_real.mul_(2)  # the cache is a snapshot, and .float() brings it to float32:
        doubled = layer.float()(x)  # float32 inputs still take the parameters' path
        layer.inference_weight = None
        assert torch.equal(doubled, layer(x))
