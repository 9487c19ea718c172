"""Scoring speed of ``detect`` (bundled VAE, no fine-tuning) against PCA-3 in the same process, and
the memory a lazy cube takes.

1. A 256 x 256 x 1600 cube (420 MB float32; a simulated 64 x 64 cube tiled 4 x 4) scored in memory:
   median seconds against the 60 s target, beside the PCA-3 baseline (hyperspy decomposition and
   scoring of the same preprocessed cube).
2. The same cube stacked 4 times along y (1024 x 256 x 1600, 1.6 GB) written as a chunked .hspy
   and scored lazily (dask) in a fresh process: the peak
   resident memory the scoring added (Linux VmHWM reset just before it, minus VmRSS then) against
   the cube's size;
   the target is a cube 4x larger than the memory given, i.e. an increase under a quarter of it.

3. On the in-memory cube, the cost of the default ``either`` reference (against scoring the
   reconstruction only, ``network``) and of bf16 (core-ops' precision API) against fp32.

Run: ``PYTHONPATH=shared .venv/bin/python packages/materials/benchmarks/bench_detect.py``
(``--no-lazy``: parts 1 and 3 only).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

logging.getLogger("hyperspy").setLevel(logging.ERROR)

SIDE, TILE, CHANNELS = 256, 64, 1600
TALL = 4  # the lazy cube is TALL * SIDE rows high

# Peak memory of the scoring alone: the kernel's high-water mark (VmHWM) is reset just before
# (clear_refs 5) and compared with the resident memory (VmRSS) at that point, in kB.
_LAZY_RUN = """
import logging, sys, time
logging.getLogger("hyperspy").setLevel(logging.ERROR)
import torch
from convsuite.materials.data import read_spectrum_image
from convsuite.materials.infer import detect, load_network

def status(key):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(key))

net = load_network()
signal = read_spectrum_image(sys.argv[1], lazy=True)
with open("/proc/self/clear_refs", "w") as handle:
    handle.write("5")
before = status("VmRSS:")
started = time.perf_counter()
found = detect(signal, net, fit=False)
print(before, status("VmHWM:"), time.perf_counter() - started)
"""


def _cube():
    from convsuite.materials.data import AnomalySpec, EnergyAxis, simulate_cube

    tile = simulate_cube(
        (TILE, TILE),
        seed=3,
        anomalies=[AnomalySpec("shift", 2.0, 30)],
        energy=EnergyAxis(500.0, 280.0 / CHANNELS, CHANNELS),
    )
    reps = SIDE // TILE
    big = tile._deepcopy_with_new_data(np.tile(tile.data, (reps, reps, 1)))
    return big


def main() -> None:
    from convsuite.core_ops.hub import model_config  # noqa: F401  (torch import outside timing)
    from convsuite.materials.baselines import pca_reconstruction
    from convsuite.materials.data import energy_axis
    from convsuite.materials.data.preprocess import prepare
    from convsuite.materials.infer import detect, grid_of, load_network
    from convsuite.materials.scoring import pearson_distance, threshold, window_channels

    try:
        from convsuite_dev.bench import Comparison, median_seconds, print_table
    except ImportError:  # run without PYTHONPATH=shared
        sys.path.insert(0, str(Path(__file__).parents[3] / "shared"))
        from convsuite_dev.bench import Comparison, median_seconds, print_table

    cube = _cube()
    net = load_network()
    grid = grid_of(net)

    def ours() -> None:
        detect(cube, net, fit=False)

    def pca3() -> None:
        own = prepare(cube.data, energy_axis(cube), grid).own
        scores = pearson_distance(
            own, pca_reconstruction(own, 3), window_channels(grid.values, (690, 730))
        )
        threshold(scores)

    vae_s = median_seconds(ours, repeats=3, warmup=0)
    pca_s = median_seconds(pca3, repeats=3, warmup=0)
    print_table(
        f"detect on a {SIDE}x{SIDE}x{CHANNELS} cube ({cube.data.nbytes / 2**20:.0f} MiB), no fine-tuning",
        [Comparison("VAE scoring vs PCA-3", vae_s, pca_s)],
        "PCA-3",
    )
    print(f"VAE scoring {vae_s:.1f} s (target <= 60 s): {'yes' if vae_s <= 60 else 'NO'}")
    network_s = median_seconds(
        lambda: detect(cube, net, fit=False, reference="network"), repeats=3, warmup=0
    )
    bf16_s = median_seconds(
        lambda: detect(cube, net, fit=False, precision="bf16"), repeats=3, warmup=0
    )
    print_table(
        "the same cube: either reference (default) and bf16",
        [
            Comparison("either vs network reference", vae_s, network_s),
            Comparison("bf16 vs fp32 (either)", bf16_s, vae_s),
        ],
        "the other",
    )

    if "--no-lazy" not in sys.argv:
        _lazy_memory(cube)


def _lazy_memory(cube) -> None:
    """Write ``cube`` as a chunked .hspy, score it lazily in a fresh process, print its memory."""
    import dask.array as da

    from convsuite.materials.data import write_signal

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.hspy"
        lazy = cube.as_lazy()  # 4 copies stacked along y: a cube 4x the in-memory one
        lazy.data = da.concatenate([lazy.data.rechunk((32, SIDE, CHANNELS))] * TALL, axis=0)
        lazy.get_dimensions_from_data()
        write_signal(lazy, path)
        result = subprocess.run(
            [sys.executable, "-c", _LAZY_RUN, str(path)], capture_output=True, text=True, check=True
        )
        before_kb, after_kb, seconds = result.stdout.strip().splitlines()[-1].split()
    cube_mib = TALL * SIDE * SIDE * CHANNELS * 4 / 2**20
    added = (int(after_kb) - int(before_kb)) / 1024
    print(
        f"lazy .hspy: scored in {float(seconds):.1f} s; peak memory added {added:.0f} MiB for a "
        f"{cube_mib:.0f} MiB cube (ratio {cube_mib / max(added, 1):.1f}x; target >= 4x): "
        f"{'yes' if cube_mib / max(added, 1) >= 4 else 'NO'}"
    )


if __name__ == "__main__":
    t = time.perf_counter()
    main()
    print(f"benchmark took {time.perf_counter() - t:.0f} s")
