"""SkyReconNet against the baselines on held-out simulations, with the same metrics for all.

Methods: ``skyrecon`` (the network's fill, ``mode="mean"``), ``skyrecon-cr`` (the network inside
a Hoffman-Ribak constrained realization, ``mode="realization"``), ``diffusive``, ``wiener`` and
``constrained`` (the CG Wiener filter and constrained realization given the true spectrum, beam
and noise). Per map: masked-pixel MSE, SSIM in the holes, correlation in the holes, the fraction
of ell bins (2 <= ell < 3 nside, by 10) of the full-sky spectrum inside the cosmic-variance band
of the true map's (``cv_fraction``; ``cv_fraction_per_bin`` with the narrower band of the bin
average, see :mod:`convsuite.cosmo.metrics`), and the seconds each method took.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence

import healpy as hp
import numpy as np
import torch

from convsuite.cosmo.baselines import WienerFilter, diffusive_inpaint
from convsuite.cosmo.data import SkySimulation, beamed_lcdm_cl, pixel_noise_sigma, simulate_sky
from convsuite.cosmo.infer import inpaint_nest, pretrained_network
from convsuite.cosmo.metrics import (
    cosmic_variance_fraction,
    hole_correlation,
    hole_mse,
    hole_ssim,
    power_spectrum,
)

__all__ = [
    "METHODS",
    "evaluate_methods",
    "score",
    "simulation_wiener_filter",
    "summarize",
    "wiener_budget",
]

METHODS = ("skyrecon", "skyrecon-cr", "diffusive", "wiener", "constrained")


def score(filled: np.ndarray, sky: SkySimulation) -> dict[str, float]:
    """The metrics of one inpainted NESTED map against its simulation."""
    ssim = hole_ssim(
        torch.from_numpy(np.asarray(filled, dtype=np.float32))[None],
        torch.from_numpy(sky.truth)[None],
        torch.from_numpy(sky.observed)[None],
    )
    cl, cl_truth = power_spectrum(filled), power_spectrum(sky.truth)
    return {
        "mse": hole_mse(filled, sky.truth, sky.observed),
        "ssim": float(ssim[0]),
        "correlation": hole_correlation(filled, sky.truth, sky.observed),
        "cv_fraction": cosmic_variance_fraction(cl, cl_truth),
        "cv_fraction_per_bin": cosmic_variance_fraction(cl, cl_truth, per_bin=True),
    }


def wiener_budget(nside: int) -> int:
    """CG iterations that bring the Wiener solve of a default sky near convergence: 300 up to
    Nside 64, 1000 above (Nside 128: hole MSE 3429 muK^2 after 1000, 3424 after 2000, 3839 after
    300; Nside 256: residual 5e-3 after 1000, 0.44 after 300)."""
    return 300 if nside <= 64 else 1000


def simulation_wiener_filter(sky: SkySimulation, max_iterations: int | None = None) -> WienerFilter:
    """The Wiener filter of a simulated sky: true LCDM spectrum, beam and noise level.

    ``max_iterations``: the CG budget; None: :func:`wiener_budget`.
    """
    nside = hp.npix2nside(sky.truth.size)
    budget = max_iterations or wiener_budget(nside)
    return WienerFilter(
        sky.observed, beamed_lcdm_cl(nside), pixel_noise_sigma(nside), max_iterations=budget
    )


def evaluate_methods(
    nside: int,
    seeds: Iterable[int],
    methods: Sequence[str] = METHODS,
    weights: str | os.PathLike[str] | None = None,
    f_sky: float = 0.75,
    progress: Callable[[str], None] | None = None,
    wiener_iterations: int | None = None,
) -> list[dict[str, float | str]]:
    """One row per (seed, method): the :func:`score` metrics plus ``seconds``.

    Args:
        nside: resolution of the held-out skies (seeds from 0; training used others).
        seeds: simulation seeds.
        methods: among :data:`METHODS`.
        weights: a bundled name or checkpoint; None: the bundled one trained at ``nside``.
        f_sky: the galactic cut's observed fraction (point sources come on top).
        progress: called with a short label before each method runs.
        wiener_iterations: CG budget of the Wiener filter and constrained realization; None:
            :func:`wiener_budget`.
    """
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    net = pretrained_network(nside, weights) if {"skyrecon", "skyrecon-cr"} & set(methods) else None
    rows: list[dict[str, float | str]] = []
    for seed in seeds:
        sky = simulate_sky(nside, seed, f_sky=f_sky)
        for method in methods:
            if progress:
                progress(f"seed {seed}: {method}")
            started = time.perf_counter()
            if method == "skyrecon":
                filled = inpaint_nest(net, sky.masked, sky.observed, "mean")
            elif method == "skyrecon-cr":
                filled = inpaint_nest(net, sky.masked, sky.observed, "realization", seed + 10**6)
            elif method == "diffusive":
                filled = diffusive_inpaint(sky.masked, sky.observed)
            elif method == "wiener":
                filled = simulation_wiener_filter(sky, wiener_iterations).inpaint(sky.masked)
            else:
                signal = (
                    simulation_wiener_filter(sky, wiener_iterations)
                    .constrained_realization(sky.masked, seed + 10**6)
                    .signal
                )
                filled = np.where(sky.observed, sky.masked, signal)
            seconds = time.perf_counter() - started
            rows.append({"method": method, "seed": seed, **score(filled, sky), "seconds": seconds})
    return rows


def summarize(rows: Sequence[dict[str, float | str]]) -> dict[str, dict[str, float]]:
    """Per method, the mean of each metric, plus ``mse_over_wiener`` when the Wiener filter ran."""
    summary: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(str(r["method"]) for r in rows):
        mine = [r for r in rows if r["method"] == method]
        keys = [k for k in mine[0] if k not in ("method", "seed")]
        summary[method] = {k: float(np.mean([float(r[k]) for r in mine])) for k in keys}
    if "wiener" in summary:
        for values in summary.values():
            values["mse_over_wiener"] = values["mse"] / summary["wiener"]["mse"]
    return summary
