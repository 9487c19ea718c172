"""Masks from files: 1 = observed, combined with the map's own holes (UNSEEN, NaN)."""

from __future__ import annotations

import os

import healpy as hp
import numpy as np

from convsuite.core_ops.io import InputError
from convsuite.cosmo.data.fits_io import SkyMap, read_sky_map

__all__ = ["apply_mask", "read_mask"]


def read_mask(
    path: str | os.PathLike[str], nside: int, regrade: bool = False, field: int = 0
) -> np.ndarray:
    """A FITS mask as (12 nside^2,) bool NESTED, True where observed (value > 0.5).

    Args:
        path: HEALPix FITS mask (any ordering); UNSEEN/NaN pixels count as masked.
        nside: the map's resolution.
        regrade: when the mask's Nside differs, ``ud_grade`` it (a degraded pixel is observed only
            if all its sub-pixels are); False: raise.
        field: the column holding the mask.

    Raises:
        InputError: unreadable, or another Nside without ``regrade``.
    """
    mask = read_sky_map(path, field)
    observed = (mask.values > 0.5) & mask.observed
    if mask.nside != nside:
        if not regrade:
            raise InputError(
                path,
                f"mask has Nside {mask.nside} but the map has Nside {nside} "
                "(pass --regrade-mask to ud_grade it)",
            )
        fraction = hp.ud_grade(
            observed.astype(np.float64), nside, order_in="NESTED", order_out="NESTED"
        )
        observed = fraction > 1.0 - 1e-6
    return observed


def apply_mask(sky: SkyMap, observed: np.ndarray | None) -> SkyMap:
    """``sky`` with its observed pixels restricted to ``observed`` (None: the map's own holes).

    Raises:
        InputError: +-inf values outside the mask, nothing observed, or every observed pixel is 0
            (an empty map).
    """
    if sky.infinite is not None:
        exposed = sky.infinite if observed is None else sky.infinite & observed
        if exposed.any():
            raise InputError(sky.source, f"{int(exposed.sum())} pixels outside the mask are +-inf")
    if observed is not None:
        sky = sky.replace(observed=sky.observed & observed)
        sky = sky.replace(values=np.where(sky.observed, sky.values, 0.0).astype(np.float32))
    if not sky.observed.any():
        raise InputError(sky.source, "every pixel is masked: nothing to inpaint from")
    if not np.any(sky.values[sky.observed]):
        raise InputError(sky.source, "the map is all zeros where observed")
    return sky
