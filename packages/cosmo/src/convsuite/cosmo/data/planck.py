"""Simulated maps in the layout of Planck's PR3 (2018) frequency and component maps.

What the Planck Legacy Archive distributes (e.g. ``COM_CMB_IQU-smica_2048_R3.00_full.fits``): a
BINTABLE extension, NESTED ordering, Nside 2048, temperatures in K_CMB, the columns ``I_STOKES``,
``Q_STOKES``, ``U_STOKES``, ``TMASK``, ``PMASK``; masks (``COM_Mask_CMB-common-Mask-Int_2048_R3.00``,
the galactic masks) come as a separate file with several columns. These writers make such files
from a simulation, for tests, the benchmark and the quickstart: the maps as astropy writes them,
not through healpy (so what is read is the layout itself, not healpy's round trip).
"""

from __future__ import annotations

import os
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from convsuite.core_ops.io import atomic_path
from convsuite.cosmo.data.simulate import SkySimulation, galactic_cut

__all__ = ["PLANCK_COLUMNS", "write_planck_layout"]

PLANCK_COLUMNS = ("I_STOKES", "Q_STOKES", "U_STOKES", "TMASK", "PMASK")
_MASK_COLUMNS = ("GAL060", "GAL070", "CMB_COMMON")  # the last: the sky's own mask


def _table(columns: dict[str, tuple[np.ndarray, str]], nside: int) -> fits.BinTableHDU:
    hdu = fits.BinTableHDU.from_columns(
        [fits.Column(name=k, format="E", unit=u or None, array=v) for k, (v, u) in columns.items()]
    )
    for key, value, comment in (
        ("PIXTYPE", "HEALPIX", "HEALPIX pixelisation"),
        ("ORDERING", "NESTED", "Pixel ordering scheme"),
        ("NSIDE", nside, "Resolution parameter of HEALPIX"),
        ("FIRSTPIX", 0, "First pixel # (0 based)"),
        ("LASTPIX", 12 * nside**2 - 1, "Last pixel # (0 based)"),
        ("INDXSCHM", "IMPLICIT", "Indexing: IMPLICIT or EXPLICIT"),
        ("COORDSYS", "GALACTIC", "Ecliptic, Galactic or Celestial (equatorial)"),
        ("BAD_DATA", hp.UNSEEN, "Sentinel value given to bad pixels"),
    ):
        hdu.header[key] = (value, comment)
    return hdu


def _write(hdu: fits.BinTableHDU, path: Path) -> None:
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(tmp, overwrite=True)


def write_planck_layout(
    sky: SkySimulation,
    path: str | os.PathLike[str],
    mask_path: str | os.PathLike[str] | None = None,
    unit: str = "K_CMB",
    uk_per_unit: float = 1e6,
) -> Path:
    """Write a simulated sky as a Planck PR3-layout map (and its mask file).

    Args:
        sky: the simulation; the map holds its truth everywhere (Planck's maps are full-sky: the
            mask says which pixels to trust), ``TMASK`` its mask, ``Q_STOKES`` / ``U_STOKES``
            small seeded noise (copied unchanged by ``cosmo-inpaint``), ``PMASK`` = ``TMASK``.
        path: the map file.
        mask_path: also write a mask file with the columns ``GAL060``, ``GAL070`` (galactic
            cuts keeping 60% and 70% of the sky) and ``CMB_COMMON`` (the sky's own mask).
        unit: TUNIT of the temperatures; ``uk_per_unit``: its size in muK (K_CMB: 1e6).

    Returns:
        ``path``.
    """
    path = Path(path)
    nside = hp.npix2nside(sky.truth.size)
    rng = np.random.default_rng([sky.seed, 3])
    mask = sky.observed.astype(np.float32)
    temperature = (sky.truth.astype(np.float64) / uk_per_unit).astype(np.float32)
    polarization = [(rng.normal(0, 1.0, sky.truth.size) / uk_per_unit).astype(np.float32)] * 2
    columns = {
        "I_STOKES": (temperature, unit),
        "Q_STOKES": (polarization[0], unit),
        "U_STOKES": (polarization[1], unit),
        "TMASK": (mask, ""),
        "PMASK": (mask.copy(), ""),
    }
    _write(_table(columns, nside), path)
    if mask_path is not None:
        masks = {
            "GAL060": (galactic_cut(nside, sky.seed, 0.6).astype(np.float32), ""),
            "GAL070": (galactic_cut(nside, sky.seed, 0.7).astype(np.float32), ""),
            "CMB_COMMON": (mask, ""),
        }
        _write(_table(masks, nside), Path(mask_path))
    return path
