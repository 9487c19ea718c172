"""convsuite-cosmo: SkyReconNet inpainting of masked full-sky CMB maps on the HEALPix faces.

The names below load their module on first use (PEP 562), so ``import convsuite.cosmo`` (and the
command lines' ``--help``) costs no torch, healpy or matplotlib import.
"""

from __future__ import annotations

from convsuite.core_ops.lazy import lazy_exports

_EXPORTS = {
    "LocalWienerFilter": "convsuite.cosmo.local_wiener",
    "SkyMap": "convsuite.cosmo.data",
    "SkyReconConfig": "convsuite.cosmo.model",
    "SkyReconNet": "convsuite.cosmo.model",
    "WienerFilter": "convsuite.cosmo.baselines",
    "apply_mask": "convsuite.cosmo.data",
    "bundled_checkpoints": "convsuite.cosmo.infer",
    "cosmic_variance_fraction": "convsuite.cosmo.metrics",
    "diffusive_inpaint": "convsuite.cosmo.baselines",
    "evaluate_methods": "convsuite.cosmo.evaluation",
    "hole_mse": "convsuite.cosmo.metrics",
    "hole_ssim": "convsuite.cosmo.metrics",
    "inpaint": "convsuite.cosmo.infer",
    "inpaint_nest": "convsuite.cosmo.infer",
    "power_spectrum": "convsuite.cosmo.metrics",
    "prefill": "convsuite.cosmo.infer",
    "pretrained_network": "convsuite.cosmo.infer",
    "read_mask": "convsuite.cosmo.data",
    "read_sky_map": "convsuite.cosmo.data",
    "simulate_sky": "convsuite.cosmo.data",
    "summarize": "convsuite.cosmo.evaluation",
    "write_sky_map": "convsuite.cosmo.data",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
