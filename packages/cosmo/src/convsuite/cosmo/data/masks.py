"""Masks from files: 1 = observed, combined with the map's own holes (UNSEEN, NaN); the checks an
observed map must pass before it is inpainted."""

from __future__ import annotations

import os

import numpy as np

from convsuite.core_ops.io import InputError
from convsuite.cosmo.data.fits_io import MAX_MAP_BYTES, SkyMap, read_sky_map
from convsuite.cosmo.data.regrade import degrade_observed

__all__ = ["MAX_ABS_UK", "apply_mask", "check_observed", "read_mask"]

MAX_ABS_UK = 1e5
"""The largest |T| in muK (100 mK) an observed pixel may hold: CMB anisotropies are a few hundred
muK, the brightest compact sources at arcminute pixels ~1e5; beyond, the value is not a CMB
temperature in muK (a flag value, another unit) and would flood the fill of the holes near it."""


def read_mask(
    path: str | os.PathLike[str],
    nside: int,
    regrade: bool = False,
    field: int | str = 0,
    max_bytes: int = MAX_MAP_BYTES,
) -> np.ndarray:
    """A FITS mask as (12 nside^2,) bool NESTED, True where observed (value > 0.5).

    Args:
        path: HEALPix FITS mask (any ordering); UNSEEN/NaN pixels count as masked.
        nside: the map's resolution.
        regrade: when the mask's Nside differs, ``ud_grade`` it (a degraded pixel is observed only
            if all its sub-pixels are); False: raise.
        field: the column holding the mask (index or name, e.g. "TMASK").
        max_bytes: memory budget (see :func:`~convsuite.cosmo.data.read_sky_map`).

    Raises:
        InputError: unreadable, +-inf values (a mask holds 0 to 1; finiteness is checked before
            the threshold), or another Nside without ``regrade``.
    """
    mask = read_sky_map(path, field, max_bytes)
    if mask.infinite is not None:
        raise InputError(
            path,
            f"{int(mask.infinite.sum())} mask pixels are +-inf: a mask holds 1 (observed) to "
            "0 (masked), UNSEEN or NaN where it has no data",
        )
    observed = (mask.values > 0.5) & mask.observed
    if mask.nside != nside:
        if not regrade:
            raise InputError(
                path,
                f"mask has Nside {mask.nside} but the map has Nside {nside} "
                "(pass --regrade-mask to ud_grade it)",
            )
        observed = degrade_observed(observed, nside)
    return observed


def check_observed(
    source: str, values: np.ndarray, observed: np.ndarray, exposed_infinite: np.ndarray | None
) -> None:
    """Refuse a map that cannot be inpainted.

    Args:
        source: the map's file or name, for the message.
        values: (12 N^2,) muK, any ordering.
        observed: (12 N^2,) bool, the pixels the fill starts from (mask applied).
        exposed_infinite: (12 N^2,) bool, +-inf pixels the mask leaves observed; None: none.

    Raises:
        InputError: +-inf outside the mask, nothing observed, every observed pixel 0 (an empty
            map), or an observed |T| above :data:`MAX_ABS_UK`.
    """
    if exposed_infinite is not None and exposed_infinite.any():
        count = int(exposed_infinite.sum())
        raise InputError(source, f"{count} pixels outside the mask are +-inf")
    if not observed.any():
        raise InputError(source, "every pixel is masked: nothing to inpaint from")
    seen = np.asarray(values)[observed]
    if not np.any(seen):
        raise InputError(source, "the map is all zeros where observed")
    wild = ~(np.abs(seen) <= MAX_ABS_UK)  # NaN counts as wild
    if wild.any():
        raise InputError(
            source,
            f"{int(wild.sum())} observed pixels have |T| above {MAX_ABS_UK / 1e3:g} mK (up to "
            f"{np.nanmax(np.abs(seen)):.3g}): not a CMB temperature in muK; mask them or "
            "convert the map to muK",
        )


def apply_mask(sky: SkyMap, observed: np.ndarray | None) -> SkyMap:
    """``sky`` with its observed pixels restricted to ``observed`` (None: the map's own holes).

    Raises:
        InputError: see :func:`check_observed`.
    """
    exposed = sky.infinite
    if exposed is not None and observed is not None:
        exposed = exposed & observed
    if observed is not None:
        sky = sky.replace(observed=sky.observed & observed)
        sky = sky.replace(values=np.where(sky.observed, sky.values, 0.0).astype(np.float32))
    check_observed(sky.source, sky.values, sky.observed, exposed)
    return sky
