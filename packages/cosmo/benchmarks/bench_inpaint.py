"""Inpainting speed: SkyReconNet against the constrained realization it aims to replace.

One held-out simulated sky per Nside (galactic cut f_sky 0.75 + point sources). SkyReconNet in
its realization mode (``small`` preset, one more level of width 8 at Nside 512; untrained: speed
does not depend on the weights; the local Wiener filter's rim, the prior draw and the diffusive
pre-fill included) fills the holes in one forward pass over the 12 faces; the constrained
realization runs the data-space CG Wiener solve with the evaluation's budget (``wiener_budget``:
300 iterations to Nside 64, 1000 above, where 300 leave it unconverged; two healpy SHT pairs
each). Medians of 3 runs for the network, one run for the realization. Targets: >= 10x faster
than the constrained realization at Nside 256; Nside 512 full sky in <= 10 s.

    PYTHONPATH=shared python packages/cosmo/benchmarks/bench_inpaint.py
"""

from __future__ import annotations

import time

import torch
from convsuite_dev.bench import Comparison, median_seconds, print_table

from convsuite.core_ops.hub import create_model, model_config
from convsuite.cosmo.data import simulate_sky
from convsuite.cosmo.evaluation import simulation_wiener_filter
from convsuite.cosmo.infer import inpaint_nest
from convsuite.cosmo.model import SkyReconNet


def main() -> None:
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="small").eval()
    rows = []
    for nside in (64, 128, 256):
        sky = simulate_sky(nside, 0)
        ours = median_seconds(
            lambda: inpaint_nest(net, sky.masked, sky.observed, "realization"), repeats=3
        )
        started = time.perf_counter()
        simulation_wiener_filter(sky).constrained_realization(sky.masked, seed=1)
        realization = time.perf_counter() - started
        target = 10.0 if nside == 256 else None
        rows.append(
            Comparison(f"Nside {nside}, f_sky 0.75 + sources", ours, realization, target=target)
        )
    print_table("SkyReconNet vs constrained realization (CG Wiener)", rows, "constrained real.")
    sky = simulate_sky(512, 0)
    small = model_config("skyrecon", "small")
    wide = SkyReconNet(small.replace(widths=(*small.widths, 8))).eval()  # + Nside 512
    seconds = median_seconds(
        lambda: inpaint_nest(wide, sky.masked, sky.observed, "realization"), repeats=1
    )
    verdict = "yes" if seconds <= 10 else "NO"
    print(f"\nNside 512 full sky: {seconds:.1f} s (target <= 10 s: {verdict})")


if __name__ == "__main__":
    main()
