"""DCLS: our DCLSConv2d against the authors' `dcls` package, and the cost of DCLS in a ConvNeXt.

Baselines, same process, 2 threads: `DCLS.construct.modules.Dcls2d` in its fastest input layout
(NCHW or channels_last); a ConvNeXt-atto training step with plain 7x7 depthwise mixers.
Targets (issue "core-ops foundation", section 4; issue 18): forward+backward >= 5x faster than
`dcls` at equal output; kernel construction cost independent of the dense kernel area; a
ConvNeXt-atto training step with DCLS mixers (the mixer's default, Gaussian) within 1.5x of the 7x7
step (ratio >= 0.67 below).

The OpenMP wait policy is left as the caller has it and printed ("default" when unset). These
benchmarks used to set ``OMP_WAIT_POLICY=PASSIVE``: that slows torch's own baseline (about 3x on
1-D depthwise k = 31 forward+backward: 134 ms against 42-47 ms under libgomp's default, idle
machine) and so inflated our ratios; our side is as fast or faster under the default, which is
what users get.

    PYTHONPATH=shared python packages/core-ops/benchmarks/bench_dcls.py
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F
from convsuite_dev.bench import Comparison, median_seconds, paired_medians, relative_error
from DCLS.construct.modules import Dcls2d
from peak import print_table_with_peak as print_table

from convsuite.core_ops.backbones import create_backbone
from convsuite.core_ops.layers import dcls
from convsuite.core_ops.layers.dcls import DCLSConv2d
from convsuite.core_ops.runtime import keep_freed_memory

torch.set_num_threads(2)
print(f"glibc keeps freed memory: {keep_freed_memory()}")
print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}")
logging.disable(logging.WARNING)  # the reference logs a CUDA-kernel warning per construction

BATCH, CHANNELS, SIZE = 8, 96, 56
KERNEL_COUNT, WINDOW = 26, 17


def _pair(version: str, channels: int = CHANNELS, window: int = WINDOW):
    torch.manual_seed(0)
    kwargs = dict(
        padding=window // 2, dilated_kernel_size=window, groups=channels, version=version, bias=True
    )
    reference = Dcls2d(channels, channels, KERNEL_COUNT, use_implicit_gemm=False, **kwargs)
    ours = DCLSConv2d(channels, channels, KERNEL_COUNT, **kwargs)
    ours.load_state_dict(reference.state_dict())
    return ours, reference


def _train_step(module: torch.nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> None:
    module.zero_grad(set_to_none=True)
    module(x.detach().requires_grad_()).backward(grad_out)


def layer_rows() -> list[Comparison]:
    rows = []
    x = torch.randn(BATCH, CHANNELS, SIZE, SIZE)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    for version in ("v1", "gauss"):
        ours, reference = _pair(version)
        with torch.no_grad():
            y_ref = reference(x)
            error = relative_error(ours(x), y_ref)
        flops = 2 * y_ref.numel() * WINDOW * WINDOW
        grad_out = torch.randn_like(y_ref)
        repeats = 3

        def ref_forward(inp):
            with torch.no_grad():
                reference(inp)

        def our_forward():
            with torch.no_grad():
                ours(x)

        rows.append(
            Comparison(
                f"{version} fwd",
                median_seconds(our_forward, repeats),
                min(median_seconds(lambda i=i: ref_forward(i), repeats) for i in (x, x_cl)),
                flops,
                error=error,
            )
        )
        rows.append(
            Comparison(
                f"{version} fwd+bwd",
                median_seconds(lambda: _train_step(ours, x, grad_out), repeats),
                min(
                    median_seconds(lambda i=i: _train_step(reference, i, grad_out), repeats)
                    for i in (x, x_cl)
                ),
                3 * flops,
                target=5.0,
                error=error,
            )
        )
    return rows


def construction_rows() -> list[Comparison]:
    """Rendering the dense kernel (forward + backward), C = 768 as in ConvNeXt's last stage."""
    rows = []
    for version in ("v1", "gauss"):
        ours, reference = _pair(version, channels=768)

        def build(module):
            module.zero_grad(set_to_none=True)
            if isinstance(module, DCLSConv2d):
                kernel = module.dense_kernel()
            else:
                kernel = module.DCK(module.weight, module.P, module.SIG)
            kernel.sum().backward()

        rows.append(
            Comparison(
                f"{version} build C=768 17x17",
                median_seconds(lambda o=ours: build(o), 5),
                median_seconds(lambda r=reference: build(r), 3),
                error=relative_error(
                    ours.dense_kernel().detach(),
                    reference.DCK(reference.weight, reference.P, reference.SIG).detach(),
                ),
            )
        )
        small = median_seconds(lambda o=ours: build(o), 5)
        wide, _ = _pair(version, channels=768, window=51)
        rows.append(
            Comparison(
                f"{version} build 51x51 vs 17x17 (ours)",
                median_seconds(lambda w=wide: build(w), 5),
                small,
            )
        )
    return rows


def convnext_rows() -> list[Comparison]:
    """ConvNeXt-atto training step (SGD, batch 8, 3x128x128): DCLS mixers vs 7x7 mixers.

    Each DCLS row times its step alternately with its own 7x7 step (paired medians). The target
    row is ``gauss``, the ``"dcls"`` mixer's default (34 taps, 17x17 window, Gaussian
    interpolation); ``v1`` is the ICLR 2023 paper's bilinear interpolation. The last row is the
    ``gauss`` step with the kernels rendered by torch ops (``dcls.FUSED_RENDERING = False``, the
    rendering before the fused kernels) against the fused step.
    """
    x = torch.randn(8, 3, 128, 128)
    target = torch.randint(0, 10, (8,))

    def make_step(mixer: str, version: str = "gauss", fused: bool = True):
        torch.manual_seed(0)
        kwargs = {"mixer_kwargs": {"version": version}} if mixer == "dcls" else {}
        model = create_backbone("convnext_atto", mixer=mixer, num_classes=10, **kwargs)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

        def step():
            dcls.FUSED_RENDERING = fused
            try:
                optimizer.zero_grad(set_to_none=True)
                F.cross_entropy(model(x), target).backward()
                optimizer.step()
            finally:
                dcls.FUSED_RENDERING = True

        return step

    dense = make_step("dense")
    rows = []
    for version in ("gauss", "v1"):
        ours, base = paired_medians(make_step("dcls", version), dense, 5)
        target_ratio = 1 / 1.5 if version == "gauss" else None
        rows.append(Comparison(f"atto step {version} vs 7x7", ours, base, target=target_ratio))
    fused, unfused = paired_medians(
        make_step("dcls", "gauss"), make_step("dcls", "gauss", fused=False), 5
    )
    rows.append(Comparison("atto step gauss, torch-op render", fused, unfused))
    return rows


def bf16_rows() -> list[Comparison]:
    rows = []
    x = torch.randn(BATCH, CHANNELS, SIZE, SIZE)
    for version in ("v1", "gauss"):
        ours, _ = _pair(version)
        with torch.no_grad():
            reference = ours(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = ours(x)

        def fp32(module=ours):
            with torch.no_grad():
                module(x)

        def bf16(module=ours):
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
                module(x)

        rows.append(
            Comparison(
                f"{version} bf16 autocast fwd",
                median_seconds(bf16, 3),
                median_seconds(fp32, 3),
                error=relative_error(low, reference),
            )
        )
    return rows


def main() -> None:
    title = f"DCLSConv2d depthwise, input ({BATCH}, {CHANNELS}, {SIZE}, {SIZE}), "
    title += f"kernel_count {KERNEL_COUNT}, window {WINDOW}"
    print_table(title, layer_rows(), "dcls pkg")
    print_table("Kernel construction (forward + backward)", construction_rows(), "baseline")
    print_table("bf16 autocast vs float32 (ratio = float32 / bf16)", bf16_rows(), "fp32")
    print_table(
        "ConvNeXt-atto training step (baseline: the 7x7 step; last row: torch-op rendering)",
        convnext_rows(),
        "baseline",
    )


if __name__ == "__main__":
    main()
