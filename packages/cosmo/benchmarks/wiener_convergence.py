"""How far the CG Wiener filter (the reference of the "MSE / Wiener" rows) is from converged.

On skies of issue 13's target prior (amplitude +15%, n_s 0.94, 5 muK arcmin) with the beam given
in arcmin, for each CG budget: the solve's true relative residual (``WienerResult.residual``), its
hole MSE against the truth and, at Nside <= 32, how far its hole map is from the exact posterior
mean (:func:`~convsuite.cosmo.baselines.dense_wiener`, relative L2 over the hole pixels); above,
how much the hole map moved since the previous budget. A beam of ``30 x 256 / nside`` arcmin
covers as many pixels as 30' at Nside 256 (the ratio of signal to noise per multipole is the same
at low ell). With ``--log`` the solver's log line gives the preconditioned residual CG stopped at.

Run (not part of ``make bench``; the Nside 32 dense solve takes about 5 GB and a minute, 3000 CG
iterations at Nside 128 about 3 minutes on the shared 2-core CPU):

    PYTHONPATH=shared python packages/cosmo/benchmarks/wiener_convergence.py \
        --nside 32 --beam 240 --budgets 300,1000,3000 --log
"""

from __future__ import annotations

import argparse
import logging
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from convsuite.cosmo.baselines import WienerFilter, dense_wiener  # noqa: E402
from convsuite.cosmo.data import SkyPrior, pixel_noise_sigma, simulate_sky  # noqa: E402
from convsuite.cosmo.metrics import hole_mse  # noqa: E402

_EXACT_NSIDE = 32  # dense_wiener up to here


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nside", type=int, default=32)
    parser.add_argument("--beam", type=float, default=240.0, help="beam FWHM, arcmin")
    parser.add_argument("--seeds", default="0", help="comma-separated sky seeds")
    parser.add_argument("--budgets", default="300,1000,3000", help="CG iteration caps")
    parser.add_argument("--log", action="store_true", help="show the solver's log lines")
    args = parser.parse_args()
    if args.log:  # the solver's own lines only (healpy logs every beam at INFO)
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("  %(message)s"))
        solver_log = logging.getLogger("convsuite.cosmo.baselines")
        solver_log.addHandler(handler)
        solver_log.setLevel(logging.INFO)
    prior = SkyPrior(amplitude=1.15, n_s=0.94, fwhm_arcmin=args.beam, noise_uk_arcmin=5.0)
    cl = prior.signal_cl(args.nside)
    sigma = pixel_noise_sigma(args.nside, prior.noise_uk_arcmin)
    for seed in (int(s) for s in args.seeds.split(",")):
        sky = simulate_sky(args.nside, seed, prior=prior)
        holes = ~sky.observed
        exact = (
            dense_wiener(sky.masked, sky.observed, cl, sigma)
            if args.nside <= _EXACT_NSIDE
            else None
        )
        if exact is not None:
            mse = hole_mse(exact, sky.truth, sky.observed)
            print(f"seed {seed}: exact posterior mean, hole MSE {mse:.1f}")
        previous = None
        for budget in (int(b) for b in args.budgets.split(",")):
            wiener = WienerFilter(sky.observed, cl, sigma, max_iterations=budget)
            solve = wiener.solve(sky.masked)
            mse = hole_mse(solve.signal, sky.truth, sky.observed)
            line = (
                f"seed {seed}, {solve.iterations:5d} iterations: residual {solve.residual:.1e}, "
                f"hole MSE {mse:.1f}, {solve.seconds:.0f} s"
            )
            if exact is not None:
                line += f", off the exact mean {_off(solve.signal, exact, holes):.2e}"
            elif previous is not None:
                line += f", moved since the last budget {_off(solve.signal, previous, holes):.2e}"
            print(line, flush=True)
            previous = solve.signal


def _off(filled: np.ndarray, reference: np.ndarray, holes: np.ndarray) -> float:
    """|filled - reference| / |reference| over the hole pixels."""
    return float(np.linalg.norm((filled - reference)[holes]) / np.linalg.norm(reference[holes]))


if __name__ == "__main__":
    main()
