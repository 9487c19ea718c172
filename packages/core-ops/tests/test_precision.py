"""precision.py: bf16 inference stays close to float32; what is converted and what is not."""

from __future__ import annotations

import copy
from typing import get_args

import pytest
import torch
import typer
from torch import nn
from typer.testing import CliRunner

from convsuite.core_ops.cli import Precision
from convsuite.core_ops.layers import FFTConv2d
from convsuite.core_ops.precision import (
    PRECISIONS,
    bf16_layers,
    fold_batch_norms,
    inference_mode,
    prepare_for_inference,
)


def small_net() -> nn.Module:
    """A conv net with every kind of layer the conversion treats differently."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),  # thin input: stays float32, its norm folded
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1),  # dense: bf16, its norm folded
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.Conv2d(32, 32, 5, padding=2, groups=32),  # depthwise: float32
        FFTConv2d(32, 32, 7, padding=3, groups=32),  # FFT: float32 inside
        nn.ConvTranspose2d(32, 16, 2, stride=2),  # dense transposed: bf16
        nn.GELU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),  # bf16
    )
    # Non-trivial running statistics, so folding is tested on something that could go wrong.
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def test_bf16_output_close_to_fp32() -> None:
    reference = small_net()
    x = torch.randn(4, 3, 24, 24)
    with inference_mode("fp32"):
        expected = prepare_for_inference(reference, "fp32")(x)
    model = prepare_for_inference(small_net(), "bf16")
    with inference_mode("bf16"):
        got = model(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    error = (got - expected).abs().max() / expected.abs().max()
    assert 0 < error < 2e-2  # bf16 keeps 8 bits of mantissa: close, and not bit-identical


def test_which_layers_are_converted() -> None:
    model = prepare_for_inference(small_net(), "bf16")
    assert bf16_layers(model) == ["3", "8", "12"]
    assert model[3].weight.dtype == torch.bfloat16
    assert model[3].weight.is_contiguous(memory_format=torch.channels_last)
    assert isinstance(model[1], nn.Identity) and isinstance(model[4], nn.Identity)  # folded
    for kept in (0, 6, 7):
        assert model[kept].weight.dtype == torch.float32
    assert not model.training


def test_fold_batch_norms_is_exact_in_eval_mode() -> None:
    model = small_net()[:6].double()  # conv, norm, relu, conv, norm, relu
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    expected = model(x)
    assert fold_batch_norms(model) == 2
    assert isinstance(model[1], nn.Identity) and isinstance(model[4], nn.Identity)
    torch.testing.assert_close(model(x), expected)


def test_prepare_is_idempotent_deepcopies_and_refuses_going_back() -> None:
    x = torch.randn(2, 3, 16, 16)
    model = prepare_for_inference(small_net(), "bf16")
    with inference_mode("bf16"):
        once = model(x)
        again = prepare_for_inference(model, "bf16")(x)
        copied = copy.deepcopy(model)(x)
    torch.testing.assert_close(again, once)
    torch.testing.assert_close(copied, once)
    with pytest.raises(ValueError, match="prepared for bf16"):
        prepare_for_inference(model, "fp32")


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="fp32, bf16"):
        prepare_for_inference(small_net(), "fp16")
    with pytest.raises(ValueError, match="fp32, bf16"), inference_mode("int8"):
        pass


def test_inference_mode_disables_autograd() -> None:
    with inference_mode("bf16"):
        y = nn.Linear(4, 4)(torch.randn(2, 4))
    assert not y.requires_grad and torch.is_inference(y)


def test_cli_option_accepts_the_precisions_and_refuses_others() -> None:
    app = typer.Typer(add_completion=False)

    @app.command()
    def infer(precision: Precision = "fp32") -> None:
        print(precision)

    runner = CliRunner()
    assert set(get_args(get_args(Precision)[0])) == set(PRECISIONS)
    assert runner.invoke(app, []).output.strip() == "fp32"
    assert runner.invoke(app, ["--precision", "bf16"]).output.strip() == "bf16"
    refused = runner.invoke(app, ["--precision", "fp16"])
    assert refused.exit_code == 2


class _Residual(nn.Module):
    """A pre-activation residual block: two sequences (bf16 regions) and an add outside them."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, 2 * channels, 3, padding=1),
            nn.BatchNorm2d(2 * channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(2 * channels, 2 * channels, 3, padding=1),
        )
        self.shortcut = nn.Sequential(nn.Conv2d(channels, 2 * channels, 1), nn.BatchNorm2d(16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def test_activations_stay_bf16_inside_regions_and_come_back_float32() -> None:
    torch.manual_seed(0)
    reference = nn.Sequential(_Residual(8), nn.Flatten(), nn.Linear(16 * 64, 3)).eval()
    for module in reference.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_var.uniform_(0.5, 2.0)
    model = prepare_for_inference(copy.deepcopy(reference), "bf16")
    seen: dict[str, torch.dtype] = {}

    def record(name: str):
        def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
            seen[name] = out.dtype

        return hook

    model[0].body[1].register_forward_hook(record("before the first conv"))
    model[0].body[2].register_forward_hook(record("conv"))
    model[0].body[4].register_forward_hook(record("after a conv"))
    model[0].register_forward_hook(record("block"))
    x = torch.randn(2, 8, 8, 8)
    with inference_mode("bf16"):
        got, expected = model(x), reference(x)
        inside = dict(seen)
        alone = model[0](x)  # a region called on its own casts back too
    assert inside == {
        "before the first conv": torch.float32,  # the input is not rounded to bf16 up front
        "conv": torch.bfloat16,
        "after a conv": torch.bfloat16,  # no cast back between layers inside the region
        "block": torch.bfloat16,  # the add of the residual block too: it is inside the region
    }
    assert got.dtype == torch.float32 and alone.dtype == torch.float32
    assert alone.is_contiguous()
    assert (got - expected).abs().max() / expected.abs().max() < 3e-2


class _OwnWeight(nn.Module):
    """A block that uses a float32 weight of its own in functional code: not a bf16 region."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.scale = nn.Parameter(torch.ones(8, 8))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return torch.einsum("bchw,cd->bdhw", y, self.scale)


class _TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.own = _OwnWeight()
        self.head = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        y = self.own(x)
        return y, {"head": self.head(y)}


def test_modules_with_own_float32_weights_stay_outside_regions() -> None:
    torch.manual_seed(0)
    reference = _TwoOutputs().eval()
    model = prepare_for_inference(copy.deepcopy(reference), "bf16")
    assert bf16_layers(model) == ["own.conv", "head.0"]
    x = torch.randn(2, 8, 6, 6)
    with inference_mode("bf16"):
        (y, rest), (y_ref, rest_ref) = model(x), reference(x)
    # The einsum met a float32 conv output (no region around _OwnWeight), and the head, a
    # region, handed back float32 inside the dict.
    assert y.dtype == torch.float32 and rest["head"].dtype == torch.float32
    torch.testing.assert_close(y, y_ref, rtol=3e-2, atol=3e-2)
    torch.testing.assert_close(rest["head"], rest_ref["head"], rtol=3e-2, atol=3e-2)


def test_pseudo_complex_convolutions_convert_and_the_network_stays_a_region() -> None:
    from convsuite.core_ops.layers.pseudocomplex_d3 import (
        CausalPseudoComplexConv2d,
        pseudo_complex_d3_block,
    )

    torch.manual_seed(0)
    reference = nn.Sequential(
        CausalPseudoComplexConv2d(2, 8, 3),  # 4 real inputs, 16 outputs: converted (stem)
        pseudo_complex_d3_block(8, 6, 2, 2),
        nn.BatchNorm2d(2 * 32),
        nn.ReLU(),
        CausalPseudoComplexConv2d(32, 2, 1),  # 64 real inputs, 4 outputs: converted (head)
    ).eval()
    x = torch.randn(1, 4, 40, 33)
    with inference_mode("fp32"):
        expected = reference(x)
        state = copy.deepcopy(reference.state_dict())
        assert torch.equal(prepare_for_inference(copy.deepcopy(reference), "fp32")(x), expected)
    model = prepare_for_inference(copy.deepcopy(reference), "bf16")
    convs = [n for n, m in model.named_modules() if type(m).__name__ == "PseudoComplexConv2d"]
    assert bf16_layers(model) == convs and len(convs) == 1 + 2 * (1 + 2) + 1  # stem, 2 x 3, head
    # The parameters (and the state dict) stay float32: the bf16 block weights are a cache.
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    inner: list[torch.dtype] = []
    model[1].blocks[1].register_forward_hook(lambda m, a, o: inner.append(o.dtype))
    with inference_mode("bf16"):
        got = model(x)
    assert inner == [torch.bfloat16]  # the whole net is one region: bf16 between the layers
    assert got.dtype == torch.float32 and got.is_contiguous()
    error = (got - expected).abs().max() / expected.abs().max()
    assert 0 < error < 3e-2


class _SpectralFilter(nn.Module):
    """No parameters, but a forward that needs float32 (torch.fft has no bf16 CPU kernels)."""

    _convsuite_keep_fp32 = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.fft.irfft(torch.fft.rfft(x, dim=-1) * 0.5, n=x.shape[-1], dim=-1)


def test_a_module_can_opt_out_of_regions() -> None:
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), _SpectralFilter()).eval()
    model = prepare_for_inference(copy.deepcopy(reference), "bf16")
    assert bf16_layers(model) == ["0"]
    x = torch.randn(2, 8, 6, 6)
    with inference_mode("bf16"):
        y = model(x)  # no region around the filter: it gets float32 (rfft would raise on bf16)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, reference(x), rtol=3e-2, atol=3e-2)
    with pytest.raises(RuntimeError):
        torch.fft.rfft(torch.randn(4, dtype=torch.bfloat16))


def test_region_dtypes_are_per_thread() -> None:
    """Threads running one prepared model each get their own caller dtype back."""
    import threading

    torch.manual_seed(0)
    model = prepare_for_inference(
        nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1)),
        "bf16",
    )
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run(dtype: torch.dtype) -> None:
        try:
            barrier.wait()
            with inference_mode("bf16"):
                for _ in range(20):
                    assert model(torch.randn(1, 8, 6, 6, dtype=dtype)).dtype == dtype
        except BaseException as error:  # noqa: BLE001 - reported in the main thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(d,)) for d in [torch.float32, torch.float64] * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors


def test_region_outputs_keep_their_mapping_type() -> None:
    from collections import OrderedDict

    from convsuite.core_ops.precision import _cast_tree

    value = OrderedDict(a=torch.ones(2, dtype=torch.bfloat16), b=[torch.ones(1)])
    cast = _cast_tree(value, torch.float32)
    assert type(cast) is OrderedDict and list(cast) == ["a", "b"]
    assert cast["a"].dtype == torch.float32 and value["a"].dtype == torch.bfloat16


def test_bf16_relu_equals_torch_relu_on_every_bfloat16_value() -> None:
    from convsuite.core_ops.precision import BF16ReLU

    every = torch.arange(-(2**15), 2**15, dtype=torch.int32).to(torch.int16).view(torch.bfloat16)
    expected = torch.relu(every)
    assert expected.isnan().sum() > 0 and (every < 0).sum() > 0  # NaNs and negatives are there
    for inplace in (False, True):
        x = every.clone()
        got = BF16ReLU(inplace=inplace)(x)
        torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
        if inplace:
            assert got.data_ptr() == x.data_ptr()
        else:  # the input untouched, bit for bit
            assert torch.equal(x.view(torch.int16), every.view(torch.int16))
    y = torch.randn(3, 5)  # float32: nn.ReLU itself
    assert torch.equal(BF16ReLU()(y), torch.relu(y))


def test_bf16_relu_passes_gradients_on_inputs_that_require_them() -> None:
    from convsuite.core_ops.precision import BF16ReLU

    x = torch.tensor([-2.0, -0.5, 0.0, 0.25, 3.0], dtype=torch.bfloat16, requires_grad=True)
    for inplace in (False, True):
        x.grad = None
        y = BF16ReLU(inplace=inplace)(x * 1)  # in place on a non-leaf, as in a network
        assert y.requires_grad
        y.sum().backward()
        expected = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0], dtype=torch.bfloat16)
        assert torch.equal(x.grad, expected)


def test_prepare_replaces_relus_and_channels_last_maps_keep_their_layout() -> None:
    from convsuite.core_ops.precision import BF16ReLU

    model = prepare_for_inference(small_net(), "bf16")
    assert type(model[2]) is BF16ReLU and type(model[5]) is BF16ReLU
    x = torch.randn(2, 8, 6, 6).to(torch.bfloat16, memory_format=torch.channels_last)
    y = BF16ReLU()(x)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(y, torch.relu(x))


def test_bf16_relu_in_place_keeps_the_layout_and_what_lies_outside_the_view() -> None:
    from convsuite.core_ops.precision import BF16ReLU

    x = torch.randn(2, 8, 6, 6).to(torch.bfloat16, memory_format=torch.channels_last)
    expected = torch.relu(x)
    y = BF16ReLU(inplace=True)(x)
    assert y.data_ptr() == x.data_ptr() and y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, expected)

    base = torch.randn(4, 10, 7, dtype=torch.bfloat16)
    before = base.clone()
    view = base[1:3, ::3, 1::2]  # strided in every dimension
    assert not view.is_contiguous()
    out = BF16ReLU(inplace=True)(view)
    assert out.data_ptr() == view.data_ptr()
    inside = torch.zeros_like(base, dtype=torch.bool)
    inside[1:3, ::3, 1::2] = True
    assert torch.equal(base[inside], torch.relu(before[inside]))
    assert torch.equal(base[~inside], before[~inside])  # untouched, negatives included
    assert (before[~inside] < 0).any()


class _Thin(nn.Module):
    """Two 4-channel convolutions, one in a child that sets its own floor back to 8."""

    _convsuite_bf16_min_channels = 4

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())
        self.tail = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1))
        self.tail._convsuite_bf16_min_channels = 8
        self.head = nn.Conv2d(4, 2, 1)  # 2 outputs: under the floor of 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.tail(self.stem(x)))


def test_a_module_can_lower_its_channel_floor() -> None:
    torch.manual_seed(0)
    reference = _Thin().eval()
    model = prepare_for_inference(copy.deepcopy(reference), "bf16")
    assert bf16_layers(model) == ["stem.0"]  # the inherited floor; tail's own; head too thin
    assert bf16_layers(prepare_for_inference(nn.Sequential(nn.Conv2d(4, 4, 3)), "bf16")) == []
    x = torch.randn(2, 4, 8, 8)
    with inference_mode("bf16"):
        got = model(x)
    assert got.dtype == torch.float32
    error = (got - reference(x)).abs().max() / reference(x).abs().max()
    assert 0 < error < 3e-2


@pytest.mark.parametrize("floor", [0, -1, 2.0, "4", True, None])
def test_a_channel_floor_that_is_no_positive_int_is_refused(floor: object) -> None:
    model = nn.Sequential(nn.Conv2d(8, 8, 3), nn.Sequential(nn.Conv2d(8, 8, 3)))
    model[1]._convsuite_bf16_min_channels = floor
    with pytest.raises(ValueError, match=r"^Sequential \(1\): _convsuite_bf16_min_channels must"):
        prepare_for_inference(model, "bf16")


def test_a_floor_of_one_converts_depthwise_convolutions() -> None:
    model = nn.Sequential(nn.Conv2d(8, 8, 3, groups=8), nn.Conv2d(8, 8, 1))
    assert bf16_layers(prepare_for_inference(copy.deepcopy(model), "bf16")) == ["1"]
    model._convsuite_bf16_min_channels = 1
    assert bf16_layers(prepare_for_inference(model, "bf16")) == ["0", "1"]
