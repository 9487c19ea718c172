"""Where a realization's hole MSE comes from: its mean, its draw's spread, and their cross term.

A constrained realization ``s' + W (d - s')`` (Hoffman & Ribak 1991; for the pipeline W is the rim
plus the network or its pre-fill, scaled as in ``infer``) has the hole error
``(s - W d) - (I - W) s'``: the mean's error on the data, the draw's own residual (``I - W``
applied to a prior draw: the posterior variance when W is the Wiener filter and the draw is from
the true prior), and twice their product, whose expectation is zero (the draw is independent of
the data) but which is not small on one sky. For the pipeline the draw's part is the realization
run on a map of zeros with the same prior and seed, and the cross term is what is left over
(realization minus mean minus draw), so it also absorbs the pipeline's nonlinearity; for the CG
baseline the draw's part is the constrained realization of zeros. Each line: one held-out sky of
issue 13's target prior (``--beam``), hole MSE in muK^2.

Run (not part of ``make bench``; about 4 minutes a sky at Nside 128 on the shared 2-core CPU,
almost all of it the two CG solves):

    PYTHONPATH=shared python packages/cosmo/benchmarks/decompose_realization.py \
        --nside 128 --seeds 0,1,2 --beam 30
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from convsuite.cosmo.data import TARGET_PRIORS, simulate_sky  # noqa: E402
from convsuite.cosmo.evaluation import DRAW_SEED_OFFSET, simulation_wiener_filter  # noqa: E402
from convsuite.cosmo.infer import inpaint_nest, network_nside, pretrained_network  # noqa: E402
from convsuite.cosmo.spectrum import measured_prior  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=128)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated sky seeds")
    beams = sorted({p.fwhm_arcmin for p in TARGET_PRIORS})
    parser.add_argument("--beam", type=float, default=30.0, choices=beams, help="arcmin")
    parser.add_argument("--iterations", type=int, default=None, help="CG budget (evaluation's)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    prior = next(p for p in TARGET_PRIORS if p.fwhm_arcmin == args.beam)
    run_nside = network_nside(args.nside)
    net = pretrained_network(run_nside)
    for seed in (int(s) for s in args.seeds.split(",")):
        sky = simulate_sky(args.nside, seed, f_sky=0.75, prior=prior)
        data, observed, truth = sky.masked, sky.observed, sky.truth
        holes = ~observed
        draw = seed + DRAW_SEED_OFFSET  # the evaluation's draw seed
        pipeline_prior = measured_prior(data, observed)
        zeros = np.zeros_like(data)

        def ours(values: np.ndarray, mode: str) -> np.ndarray:
            return inpaint_nest(net, values, observed, mode, draw, pipeline_prior, nside=run_nside)

        def error(values: np.ndarray) -> float:
            return float(np.mean((values[holes] - truth[holes]) ** 2))

        def power(values: np.ndarray) -> float:
            return float(np.mean(np.asarray(values, dtype=np.float64)[holes] ** 2))

        mean, realization, spread = (
            ours(data, "mean"),
            ours(data, "realization"),
            ours(zeros, "realization"),
        )
        wiener = simulation_wiener_filter(sky, args.iterations, prior)
        optimum = wiener.solve(data)
        cr_spread = wiener.constrained_realization(zeros, draw)
        cross = error(realization) - error(mean) - power(spread)
        print(
            f"seed {seed}: ours: realization {error(realization):.0f} = mean {error(mean):.0f}"
            f" + draw {power(spread):.0f} + cross {cross:.0f};"
            f" Wiener filter {error(optimum.signal):.0f} (residual {optimum.residual:.1e}),"
            f" CR draw {power(cr_spread.signal):.0f} (residual {cr_spread.residual:.1e});"
            f" measured noise {pipeline_prior.noise_sigma:.3f} muK",
            flush=True,
        )


if __name__ == "__main__":
    main()
