"""CMB data: HEALPix FITS maps and masks (read and written with healpy), and seeded simulations."""

from convsuite.cosmo.data.fits_io import (
    MAX_MAP_BYTES,
    MIN_PARTIAL_FRACTION,
    SkyMap,
    hole_pixels,
    nside_of,
    read_sky_map,
    sky_map_nside,
    write_sky_map,
)
from convsuite.cosmo.data.masks import MAX_ABS_UK, apply_mask, check_observed, read_mask
from convsuite.cosmo.data.simulate import (
    DEFAULT_NOISE_UK_ARCMIN,
    SkySimulation,
    beamed_lcdm_cl,
    default_fwhm_arcmin,
    galactic_cut,
    gaussian_alm,
    lcdm_cl,
    pixel_noise_sigma,
    point_source_mask,
    simulate_cmb,
    simulate_mask,
    simulate_sky,
)

__all__ = [
    "DEFAULT_NOISE_UK_ARCMIN",
    "MAX_ABS_UK",
    "MAX_MAP_BYTES",
    "MIN_PARTIAL_FRACTION",
    "SkyMap",
    "SkySimulation",
    "apply_mask",
    "beamed_lcdm_cl",
    "check_observed",
    "default_fwhm_arcmin",
    "galactic_cut",
    "gaussian_alm",
    "hole_pixels",
    "lcdm_cl",
    "nside_of",
    "pixel_noise_sigma",
    "point_source_mask",
    "read_mask",
    "read_sky_map",
    "simulate_cmb",
    "simulate_mask",
    "simulate_sky",
    "sky_map_nside",
    "write_sky_map",
]
