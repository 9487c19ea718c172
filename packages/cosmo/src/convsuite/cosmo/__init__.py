"""convsuite-cosmo: SkyReconNet inpainting of masked full-sky CMB maps on the HEALPix faces."""

from convsuite.cosmo.baselines import WienerFilter, diffusive_inpaint
from convsuite.cosmo.data import (
    SkyMap,
    apply_mask,
    read_mask,
    read_sky_map,
    simulate_sky,
    write_sky_map,
)
from convsuite.cosmo.evaluation import evaluate_methods, summarize
from convsuite.cosmo.infer import bundled_checkpoints, inpaint, inpaint_nest, pretrained_network
from convsuite.cosmo.local_wiener import LocalWienerFilter
from convsuite.cosmo.metrics import cosmic_variance_fraction, hole_mse, hole_ssim, power_spectrum
from convsuite.cosmo.model import SkyReconConfig, SkyReconNet

__all__ = [
    "LocalWienerFilter",
    "SkyMap",
    "SkyReconConfig",
    "SkyReconNet",
    "WienerFilter",
    "apply_mask",
    "bundled_checkpoints",
    "cosmic_variance_fraction",
    "diffusive_inpaint",
    "evaluate_methods",
    "hole_mse",
    "hole_ssim",
    "inpaint",
    "inpaint_nest",
    "power_spectrum",
    "pretrained_network",
    "read_mask",
    "read_sky_map",
    "simulate_sky",
    "summarize",
    "write_sky_map",
]
