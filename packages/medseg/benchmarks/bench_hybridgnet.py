"""HybridGNet (small preset, 256 px) inference throughput against the U-Net pixel baseline.

Rows, batch 16, 2 threads, in one process:
- network only: HybridGNet forward vs the MONAI U-Net baseline forward on the same batch;
- full pipeline: ``segment()`` on 1024 x 1024 radiographs (crop/pad/resize, network, landmarks back
  to image pixels, filled organ masks at 1024 px) vs the U-Net pipeline (same preprocessing,
  probabilities resampled to 1024 px and thresholded).
Target: HybridGNet >= 20 images/s batched (full pipeline). Ratio = U-Net time / HybridGNet time.

    PYTHONPATH=shared python packages/medseg/benchmarks/bench_hybridgnet.py
"""

from __future__ import annotations

import torch
from convsuite_dev.bench import Comparison, median_seconds, print_table

from convsuite.core_ops.hub import create_model
from convsuite.core_ops.runtime import keep_freed_memory
from convsuite.medseg.data.phantom import PhantomOptions, simulate_phantoms
from convsuite.medseg.infer import segment, segment_pixels

torch.set_num_threads(2)
BATCH = 16
TARGET_IMAGES_PER_S = 20


def main() -> None:
    keep_freed_memory()
    torch.manual_seed(0)
    net = create_model("hybridgnet", preset="small").eval()
    unet = create_model("unet_baseline", preset="small").eval()
    config = net.config
    images = [p.image for p in simulate_phantoms(BATCH, seed=0, options=PhantomOptions(size=1024))]
    batch = torch.rand(BATCH, 1, config.image_size, config.image_size)
    with torch.no_grad():
        net_s = median_seconds(lambda: net(batch), repeats=7)
        unet_s = median_seconds(lambda: unet(batch), repeats=7)
    pipeline_s = median_seconds(lambda: list(segment(net, images, batch_size=BATCH)), repeats=5)
    unet_pipeline_s = median_seconds(lambda: segment_pixels(unet, images), repeats=5)
    rows = [
        Comparison(f"network, batch {BATCH}", net_s, unet_s),
        Comparison(f"pipeline 1024 px, batch {BATCH}", pipeline_s, unet_pipeline_s),
    ]
    print_table("HybridGNet small vs U-Net baseline, inference", rows, "U-Net")
    throughput = BATCH / pipeline_s
    ok = "yes" if throughput >= TARGET_IMAGES_PER_S else "NO"
    print(
        f"\nHybridGNet throughput: network {BATCH / net_s:.1f} images/s, full pipeline "
        f"{throughput:.1f} images/s (target >= {TARGET_IMAGES_PER_S}: {ok}); "
        f"U-Net pipeline {BATCH / unet_pipeline_s:.1f} images/s"
    )


if __name__ == "__main__":
    main()
