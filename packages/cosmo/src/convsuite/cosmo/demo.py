"""cosmo's demo (entry point ``cosmo`` of ``convsuite.demos``): inpaint a simulated masked sky.

Simulates a held-out LCDM sky (seed 0; training used seeds from 10^6) at the Nside of the bundled
checkpoint, masks the galactic plane (f_sky 0.75) and point sources, fills the holes with the
bundled SkyReconNet (mean and constrained-realization modes) and with diffusive inpainting, and
writes Mollweide views and power spectra against the cosmic-variance band.
"""

from __future__ import annotations

import time
from pathlib import Path

from convsuite.core_ops.demo import DemoResult
from convsuite.core_ops.figures import save_figure
from convsuite.cosmo.baselines import diffusive_inpaint
from convsuite.cosmo.data import simulate_sky
from convsuite.cosmo.evaluation import score
from convsuite.cosmo.figures import plot_maps, plot_spectra
from convsuite.cosmo.infer import bundled_checkpoints, inpaint_nest, pretrained_network
from convsuite.cosmo.metrics import power_spectrum

DEMO_NSIDE = 128  # a bundled checkpoint; a few seconds on a laptop CPU


def run(out_dir: Path) -> DemoResult:
    """Simulate, inpaint with the bundled network and diffusion, write figures, report metrics."""
    out_dir = Path(out_dir)
    bundled = bundled_checkpoints()
    nside = DEMO_NSIDE if DEMO_NSIDE in bundled else max(bundled)
    net = pretrained_network(nside)
    sky = simulate_sky(nside, 0, f_sky=0.75)
    started = time.perf_counter()
    filled = {"SkyReconNet": inpaint_nest(net, sky.masked, sky.observed, "mean")}
    seconds = time.perf_counter() - started
    filled["SkyReconNet realization"] = inpaint_nest(
        net, sky.masked, sky.observed, "realization", 1
    )
    filled["diffusive"] = diffusive_inpaint(sky.masked, sky.observed)
    maps = plot_maps(sky.masked, sky.observed, filled["SkyReconNet"], sky.truth, f"Nside {nside}")
    spectra = plot_spectra({**filled, "truth": sky.truth}, power_spectrum(sky.truth))
    figures = [
        save_figure(maps, out_dir / "cosmo_maps.png"),
        save_figure(spectra, out_dir / "cosmo_spectra.png"),
    ]
    summary = {name: score(values, sky) for name, values in filled.items()}
    summary["SkyReconNet"]["seconds"] = round(seconds, 2)
    return DemoResult(
        title=f"Inpainting a masked full-sky CMB map (Nside {nside}) on the HEALPix faces",
        summary={"nside": nside, "f_sky": round(sky.observed.mean(), 3), **summary},
        figures=figures,
        description=(
            "A simulated LCDM sky with the galactic plane and point sources masked, filled by the "
            "bundled SkyReconNet (its mean estimate, and a constrained realization built around "
            "it) and by diffusive inpainting. Metrics are over the masked pixels; cv_fraction is "
            "the share of ell bins of the full-sky spectrum inside the cosmic-variance band."
        ),
    )
