"""Wafer-map classification throughput at full resolution: sparse network vs the binned dense baseline.

Maps: simulated 4096 x 4096 wafers (every pattern), topped up with uniform defects to 20k defects
each, as the issue's operating point. Both networks untrained (speed does not depend on weights);
timed end to end from WaferMap objects (batching/binning included), batch 32, medians. Rows at 1
and at 2 threads. Target: sparse >= 50 maps/s. Ratio = dense baseline time / sparse time. A last
table times the network without the shape profile and clump statistics (pools only, the design
before them) against the bundled design, at 1 thread: what the novelty inputs cost.

    PYTHONPATH=shared python packages/semicon/benchmarks/bench_monitor.py
"""

from __future__ import annotations

import numpy as np
import torch
from convsuite_dev.bench import Comparison, median_seconds, print_table

from convsuite.core_ops.hub import create_model
from convsuite.core_ops.runtime import keep_freed_memory
from convsuite.semicon.data import PATTERNS, SimulationOptions, WaferMap, simulate_wafer_maps
from convsuite.semicon.monitor import predict_batches

BATCH = 32
DEFECTS = 20_000
TARGET_MAPS_PER_S = 50


def _topped_up(wafer: WaferMap, rng: np.random.Generator) -> WaferMap:
    """The map with uniform in-disk defects added (or defects dropped) to exactly DEFECTS."""
    side = wafer.grid_shape[0]
    coords = wafer.coords
    while len(coords) < DEFECTS:
        extra = rng.integers(0, side, size=(DEFECTS, 2))
        radius = np.hypot(extra[:, 0] + 0.5 - side / 2, extra[:, 1] + 0.5 - side / 2)
        coords = np.unique(np.concatenate([coords, extra[radius < side / 2 - 1]]), axis=0)
    coords = coords[rng.permutation(len(coords))[:DEFECTS]]
    return WaferMap.from_coordinates(
        coords, wafer.grid_shape, wafer.pitch_mm, wafer.diameter_mm, wafer.label, wafer.name
    )


def main() -> None:
    keep_freed_memory()
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    simulated = simulate_wafer_maps(BATCH, 3, SimulationOptions(grid=4096))
    maps = [_topped_up(wafer, rng) for wafer in simulated]
    sparse = create_model("wafer_sparse", preset="small", classes=PATTERNS)
    dense = create_model("wafer_dense", preset="small", classes=PATTERNS)

    def run(net: torch.nn.Module) -> None:
        for _ in predict_batches(net, maps, BATCH):
            pass

    rows, rates = [], {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        sparse_s = median_seconds(lambda: run(sparse), repeats=7)
        dense_s = median_seconds(lambda: run(dense), repeats=7)
        rates[threads] = BATCH / sparse_s
        rows.append(
            Comparison(f"{BATCH} maps x 20k defects, {threads} thread(s)", sparse_s, dense_s)
        )
    print_table("Sparse full-resolution net vs binned 64x64 dense baseline", rows, "dense 64x64")
    pools_only = create_model(
        "wafer_sparse",
        preset="small",
        classes=PATTERNS,
        shape_profile=False,
        clump_statistics=False,
    )
    torch.set_num_threads(1)
    pools_s = median_seconds(lambda: run(pools_only), repeats=7)
    sparse_s = median_seconds(lambda: run(sparse), repeats=7)
    print_table(
        "Bundled design vs pools only (no shape profile, no clump statistics)",
        [Comparison(f"{BATCH} maps x 20k defects, 1 thread", sparse_s, pools_s)],
        "pools only",
    )
    best = max(rates.values())
    ok = "yes" if best >= TARGET_MAPS_PER_S else "NO"
    print(
        f"\nsparse throughput: {rates[1]:.0f} maps/s (1 thread), {rates[2]:.0f} maps/s (2 threads); "
        f"target >= {TARGET_MAPS_PER_S}: {ok}"
    )


if __name__ == "__main__":
    main()
