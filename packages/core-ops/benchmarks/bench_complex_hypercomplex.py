"""Complex and parameterized-hypercomplex convolutions against their plain baselines.

(a) ComplexConv2d (one real conv with the block weight [[Wr, -Wi], [Wi, Wr]]) against the naive
    four-real-convolution form, on (8, 32, 64, 64) complex64, 3x3; Gauss's three-convolution
    trick is timed too, for reference. (b) PHConv2d(n=4) forward+backward against nn.Conv2d with
    the same channels: PHConv pays for building its weight. (c) bf16 autocast against float32 for
    each layer, with the relative error of the bf16 output. Same process, same inputs, 2 threads.

    PYTHONPATH=shared python packages/core-ops/benchmarks/bench_complex_hypercomplex.py
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from convsuite_dev.bench import Comparison, median_seconds, relative_error
from peak import print_table_with_peak as print_table
from torch import nn

from convsuite.core_ops.layers.complex import (
    ComplexConv2d,
    PseudoComplexConv2d,
    complex_to_channels,
)
from convsuite.core_ops.layers.hypercomplex import PHConv2d, PHLinear

torch.set_num_threads(2)
REPEATS = 11
BATCH, CHANNELS, SIZE = 8, 32, 64


def _four_convs(z: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
    real = F.conv2d(z.real, wr, padding=1) - F.conv2d(z.imag, wi, padding=1)
    imag = F.conv2d(z.real, wi, padding=1) + F.conv2d(z.imag, wr, padding=1)
    return torch.complex(real, imag)


def _gauss_three_convs(z: torch.Tensor, wr: torch.Tensor, wi: torch.Tensor) -> torch.Tensor:
    # (a + ib)(c + id): k1 = c(a + b), k2 = a(d - c), k3 = b(c + d); re = k1 - k3, im = k1 + k2.
    k1 = F.conv2d(z.real + z.imag, wr, padding=1)
    k2 = F.conv2d(z.real, wi - wr, padding=1)
    k3 = F.conv2d(z.imag, wr + wi, padding=1)
    return torch.complex(k1 - k3, k1 + k2)


def _train_step(fn: Callable[[], torch.Tensor], grad_out: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        fn().backward(grad_out)

    return step


def _infer(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            fn()

    return run


def complex_rows() -> list[Comparison]:
    torch.manual_seed(0)
    layer = ComplexConv2d(CHANNELS, CHANNELS, 3, padding=1, bias=False)
    pseudo = PseudoComplexConv2d(CHANNELS, CHANNELS, 3, padding=1, bias=False)
    pseudo.load_state_dict(layer.state_dict())
    wr, wi = layer.weight_real, layer.weight_imag
    z = torch.randn(BATCH, CHANNELS, SIZE, SIZE, dtype=torch.complex64, requires_grad=True)
    x = complex_to_channels(z.detach()).requires_grad_()
    reference = _four_convs(z, wr, wi)
    grad_c = torch.randn_like(reference)
    grad_x = complex_to_channels(grad_c)
    # 4 real convolutions of C -> C channels, 2 flops per multiply-add.
    flops = 4 * 2 * BATCH * CHANNELS * CHANNELS * 9 * SIZE * SIZE
    error = relative_error(torch.view_as_real(layer(z)), torch.view_as_real(reference))
    error_gauss = relative_error(
        torch.view_as_real(_gauss_three_convs(z, wr, wi)), torch.view_as_real(reference)
    )

    def ours():
        return layer(z)

    def pseudo_ours():
        return pseudo(x)

    def naive():
        return _four_convs(z, wr, wi)

    def gauss():
        return _gauss_three_convs(z, wr, wi)

    naive_fwd = median_seconds(_infer(naive), REPEATS)
    naive_train = median_seconds(_train_step(naive, grad_c), REPEATS)
    return [
        Comparison(
            "complex block conv fwd",
            median_seconds(_infer(ours), REPEATS),
            naive_fwd,
            flops,
            error=error,
        ),
        Comparison(
            "complex block conv fwd+bwd",
            median_seconds(_train_step(ours, grad_c), REPEATS),
            naive_train,
            3 * flops,
            error=error,
        ),
        Comparison(
            "pseudo-complex (real in) fwd",
            median_seconds(_infer(pseudo_ours), REPEATS),
            naive_fwd,
            flops,
            error=error,
        ),
        Comparison(
            "pseudo-complex (real in) fwd+bwd",
            median_seconds(_train_step(pseudo_ours, grad_x), REPEATS),
            naive_train,
            3 * flops,
            error=error,
        ),
        Comparison(
            "Gauss 3-conv fwd (not used)",
            median_seconds(_infer(gauss), REPEATS),
            naive_fwd,
            flops,
            error=error_gauss,
        ),
        Comparison(
            "Gauss 3-conv fwd+bwd (not used)",
            median_seconds(_train_step(gauss, grad_c), REPEATS),
            naive_train,
            3 * flops,
            error=error_gauss,
        ),
    ]


def ph_rows() -> list[Comparison]:
    rows = []
    for channels, size in ((64, 32), (256, 16)):
        torch.manual_seed(0)
        ph = PHConv2d(4, channels, channels, 3, padding=1)
        real = nn.Conv2d(channels, channels, 3, padding=1)
        x = torch.randn(BATCH, channels, size, size)
        grad_out = torch.randn(BATCH, channels, size, size)
        flops = 2 * BATCH * channels * channels * 9 * size * size
        with torch.no_grad():
            real.weight.copy_(ph.weight)
            real.bias.copy_(ph.bias)
            error = relative_error(ph(x), real(x))
        label = f"PH n=4 {channels}ch {size}x{size}"
        rows.append(
            Comparison(
                f"{label} fwd",
                median_seconds(_infer(lambda: ph(x)), REPEATS),
                median_seconds(_infer(lambda: real(x)), REPEATS),
                flops,
                error=error,
            )
        )
        rows.append(
            Comparison(
                f"{label} fwd+bwd",
                median_seconds(_train_step(lambda: ph(x), grad_out), REPEATS),
                median_seconds(_train_step(lambda: real(x), grad_out), REPEATS),
                3 * flops,
                error=error,
            )
        )
    return rows


def bf16_rows() -> list[Comparison]:
    """Forward under torch.autocast('cpu', bfloat16) against float32; ratio = fp32 / bf16."""
    torch.manual_seed(0)
    z = torch.randn(BATCH, CHANNELS, SIZE, SIZE, dtype=torch.complex64)
    cases = [
        (
            "ComplexConv2d",
            ComplexConv2d(CHANNELS, CHANNELS, 3, padding=1),
            z,
            8 * BATCH * CHANNELS**2 * 9 * SIZE**2,
        ),
        (
            "PseudoComplexConv2d",
            PseudoComplexConv2d(CHANNELS, CHANNELS, 3, padding=1),
            complex_to_channels(z),
            8 * BATCH * CHANNELS**2 * 9 * SIZE**2,
        ),
        (
            "PHConv2d n=4 64ch",
            PHConv2d(4, 64, 64, 3, padding=1),
            torch.randn(BATCH, 64, 32, 32),
            2 * BATCH * 64 * 64 * 9 * 32 * 32,
        ),
        (
            "PHLinear n=4 1024",
            PHLinear(4, 1024, 1024),
            torch.randn(2048, 1024),
            2 * 2048 * 1024 * 1024,
        ),
    ]
    rows = []
    for name, layer, inp, flops in cases:
        with torch.no_grad():
            reference = layer(inp)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = layer(inp)
        if reference.is_complex():
            reference, low = complex_to_channels(reference), complex_to_channels(low)

        def run_bf16(layer=layer, inp=inp) -> None:
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                layer(inp)

        rows.append(
            Comparison(
                f"bf16 {name} fwd",
                median_seconds(run_bf16, REPEATS),
                median_seconds(_infer(lambda layer=layer, inp=inp: layer(inp)), REPEATS),
                flops,
                error=relative_error(low, reference),
            )
        )
    return rows


def main() -> None:
    print_table(
        f"(a) Complex 3x3 conv, ({BATCH}, {CHANNELS}, {SIZE}, {SIZE}) complex64 "
        "(ratio = 4-conv / ours)",
        complex_rows(),
        "4-conv",
    )
    print_table(
        "(b) PHConv2d n=4 vs nn.Conv2d, same channels (ratio < 1: the weight build costs)",
        ph_rows(),
        "Conv2d",
    )
    print_table(
        "(c) bf16 autocast vs float32 (ratio = fp32 / bf16 = speed-up)", bf16_rows(), "fp32"
    )
    print(
        "ComplexConv2d runs under bf16 autocast because its work is one real convolution of the "
        "pseudo-complex layout; the complex output is upcast to complex64 (no bf16 complex dtype)."
    )


if __name__ == "__main__":
    main()
