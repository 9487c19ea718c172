"""Inpainting speed: SkyReconNet against the constrained realization it aims to replace.

One held-out simulated sky per Nside (galactic cut f_sky 0.75 + point sources). SkyReconNet in
its realization mode (``small`` preset, one more level of width 8 at Nside 512; untrained: speed
does not depend on the weights; the local Wiener filter's rim, the prior draw and the diffusive
pre-fill included) fills the holes in one forward pass over the 12 faces; the constrained
realization runs the data-space CG Wiener solve with the evaluation's budget (``wiener_budget``:
300 iterations to Nside 64, 1000 above, where 300 leave it unconverged; two healpy SHT pairs
each). Medians of 3 runs for the network, one run for the realization. Targets: >= 10x faster
than the constrained realization at Nside 256; Nside 512 full sky in <= 10 s (median of 3, then
one more run under cProfile for a line of where its time goes, by stage).

    PYTHONPATH=shared python packages/cosmo/benchmarks/bench_inpaint.py [--only-512]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable

import torch
from convsuite_dev.bench import Comparison, median_seconds, print_table

from convsuite.core_ops.hub import create_model, model_config
from convsuite.cosmo.data import simulate_sky
from convsuite.cosmo.evaluation import simulation_wiener_filter
from convsuite.cosmo.infer import inpaint_nest
from convsuite.cosmo.model import SkyReconNet

# the 512 realization's stages: (module file, function) -> label
_STAGES = {
    ("spectrum.py", "measured_prior"): "measured prior",
    ("local_wiener.py", "fill"): "rim fill",
    ("local_wiener.py", "refill"): "two-sided refill",
    ("infer.py", "_predict"): "network + pre-fill",
    ("infer.py", "_signal_band"): "band filter",
    ("simulate.py", "simulate_cmb"): "prior draw",
}


def _stages(run: Callable[[], object]) -> str:
    """One run of ``run`` under cProfile: seconds in each of :data:`_STAGES` and the total."""
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.runcall(run)
    total = time.perf_counter() - started
    spent = dict.fromkeys(_STAGES.values(), 0.0)
    for (path, _, name), (_, _, _, cumulative, _) in pstats.Stats(profile).stats.items():
        label = _STAGES.get((path.rsplit("/", 1)[-1], name))
        if label is not None:
            spent[label] += cumulative
    parts = ", ".join(f"{label} {seconds:.1f} s" for label, seconds in spent.items())
    return f"{total:.1f} s: {parts}, rest {total - sum(spent.values()):.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only-512", action="store_true", help="the Nside 512 line alone (no CG: ~5 minutes)"
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="small").eval()
    rows = []
    for nside in () if args.only_512 else (64, 128, 256):
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
    if rows:
        print_table("SkyReconNet vs constrained realization (CG Wiener)", rows, "constrained real.")
    sky = simulate_sky(512, 0)
    small = model_config("skyrecon", "small")
    wide = SkyReconNet(small.replace(widths=(*small.widths, 8))).eval()  # + Nside 512

    def realization() -> None:
        inpaint_nest(wide, sky.masked, sky.observed, "realization")

    seconds = median_seconds(realization, repeats=3)
    verdict = "yes" if seconds <= 10 else "NO"
    print(f"\nNside 512 full sky: {seconds:.1f} s, median of 3 (target <= 10 s: {verdict})")
    print(f"Nside 512 stages (one more run, cProfile): {_stages(realization)}")


if __name__ == "__main__":
    main()
