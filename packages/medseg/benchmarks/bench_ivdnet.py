"""IVD-Net (small preset) on a whole IVDM3Seg-size subject, against the early-fusion U-Net.

Rows, 1 thread, in one process, on a simulated 36 x 256 x 256 Dixon subject (2.0 x 1.25 x 1.25 mm,
stored in a random axis order): the whole pipeline of ``net.segment`` (reorientation, per-modality
normalization, in-plane resampling of the 36 sagittal slices to the weights' pixel size, the
network in batches of 6, resampling back, connected components and centroids), with the default
sub-pixel shifted grids (4 network passes per slice) and with one grid (``shifts=False``), fp32 and
bf16 (core-ops' precision API), against the early-fusion U-Net baseline (small preset) in the same
pipeline. Target: a whole subject in <= 10 s with IVD-Net small (the default, shifted grids).
Ratio = U-Net time / IVD-Net time.

    PYTHONPATH=shared python packages/medseg/benchmarks/bench_ivdnet.py
"""

from __future__ import annotations

import torch
from convsuite_dev.bench import Comparison, median_seconds, print_table

from convsuite.core_ops.hub import create_model
from convsuite.core_ops.runtime import keep_freed_memory
from convsuite.medseg.data.spine_phantom import simulate_spine

torch.set_num_threads(1)  # see the README: 2 threads on the shared CPU oversubscribe it
TARGET_SECONDS = 10.0


def main() -> None:
    keep_freed_memory()
    torch.manual_seed(0)
    net = create_model("ivdnet", preset="small").eval()
    unet = create_model("unet_early_fusion", preset="small").eval()
    phantom = simulate_spine(2026)
    image, affine = phantom.image, phantom.affine
    ivd_s = median_seconds(lambda: net.segment(image, affine), repeats=3)
    one_s = median_seconds(lambda: net.segment(image, affine, shifts=False), repeats=3)
    ivd_bf16_s = median_seconds(lambda: net.segment(image, affine, precision="bf16"), repeats=3)
    unet_s = median_seconds(lambda: unet.segment(image, affine), repeats=3)
    unet_one_s = median_seconds(lambda: unet.segment(image, affine, shifts=False), repeats=3)
    rows = [
        Comparison("whole subject 36 x 256 x 256, fp32, 4 shifted grids", ivd_s, unet_s),
        Comparison("whole subject 36 x 256 x 256, fp32, one grid", one_s, unet_one_s),
        Comparison("whole subject, IVD-Net bf16, 4 shifted grids", ivd_bf16_s, unet_s),
    ]
    print_table("IVD-Net small vs early-fusion U-Net, whole-subject segmentation", rows, "U-Net")
    ok = "yes" if ivd_s <= TARGET_SECONDS else "NO"
    print(
        f"\nIVD-Net small: {ivd_s:.2f} s per subject fp32 with shifted grids (target <= "
        f"{TARGET_SECONDS:.0f} s: {ok}), {one_s:.2f} s one grid, {ivd_bf16_s:.2f} s bf16; "
        f"early-fusion U-Net {unet_s:.2f} s ({unet_one_s:.2f} s one grid)"
    )


if __name__ == "__main__":
    main()
