"""Dilated Reparam Block: the fused single conv against the multi-branch training form, inference.

Baseline: the unfused block (large depthwise conv + dilated small depthwise convs, each with BN, in
eval mode); ours: the same block after ``reparameterize()``. Both take channels_last input, run under
``torch.no_grad`` in one process with 2 threads. Target: fused >= 2x faster. Report rows: the fused
conv under bf16 autocast against the fused conv in float32 (speed and error).

    PYTHONPATH=shared python packages/core-ops/benchmarks/bench_reparam.py
"""

from __future__ import annotations

import copy

import torch
from convsuite_dev.bench import Comparison, median_seconds, relative_error
from peak import print_table_with_peak as print_table

from convsuite.core_ops.layers.reparam import DilatedReparamConv2d

torch.set_num_threads(2)
BATCH, CHANNELS, SIZE = 8, 96, 56
REPEATS = {13: 10, 17: 10, 31: 5}


def _trained_block(kernel_size: int) -> DilatedReparamConv2d:
    """A block whose BN affine parameters and running statistics are not the identity."""
    block = DilatedReparamConv2d(CHANNELS, kernel_size)
    with torch.no_grad():
        for m in block.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_()
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 2.0)
    return block.eval()


def main() -> None:
    torch.manual_seed(0)
    x = torch.randn(BATCH, CHANNELS, SIZE, SIZE).contiguous(memory_format=torch.channels_last)
    pixels = BATCH * CHANNELS * SIZE * SIZE
    fused_rows, bf16_rows = [], []
    for kernel_size, repeats in REPEATS.items():
        block = _trained_block(kernel_size)
        fused = copy.deepcopy(block)
        fused.reparameterize()
        with torch.no_grad():
            reference, ours = block(x), fused(x)
            baseline_s = median_seconds(lambda: block(x), repeats=repeats)
            ours_s = median_seconds(lambda: fused(x), repeats=repeats)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = fused(x)
                bf16_s = median_seconds(lambda: fused(x), repeats=repeats)
        taps = kernel_size**2 + sum(k * k for k, _ in block.branches)
        max_abs = float((ours - reference).abs().max())
        print(
            f"k={kernel_size}: max |fused - unfused| = {max_abs:.2e}, "
            f"max |bf16 - fp32| = {float((low.float() - ours).abs().max()):.2e}"
        )
        fused_rows.append(
            Comparison(
                f"dw k={kernel_size} fused vs branches",
                ours_s,
                baseline_s,
                flops=2.0 * pixels * taps,
                target=2.0,
                error=relative_error(ours, reference),
            )
        )
        bf16_rows.append(
            Comparison(
                f"dw k={kernel_size} fused bf16 vs fp32",
                bf16_s,
                ours_s,
                flops=2.0 * pixels * kernel_size**2,
                target=None,
                error=relative_error(low, ours),
            )
        )
    print_table(
        f"Dilated Reparam Block inference, input ({BATCH}, {CHANNELS}, {SIZE}, {SIZE}) "
        "channels_last",
        fused_rows,
        "unfused",
    )
    print_table("Fused conv: bf16 autocast against float32", bf16_rows, "fp32")


if __name__ == "__main__":
    main()
