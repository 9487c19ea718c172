"""Temperature units of CMB maps, read with ``astropy.units``: everything is computed in muK.

A map's TUNIT (or ``--unit``) is parsed after the CMB spellings in the wild are normalised: a
``_CMB`` / ``CMB`` / ``cmb`` / ``(CMB)`` qualifier (thermodynamic temperature, what Planck
distributes: ``K_CMB``, ``Kcmb``, ``uK_CMB``), ``mu`` / ``micro`` / ``µ`` / ``μ`` for micro.
Rayleigh-Jeans (``K_RJ``) and brightness units (``MJy/sr``) are refused: converting them to
thermodynamic temperature needs the frequency, which a map file does not reliably give.

A map without a unit is taken as muK, but a map whose observed RMS is implausible for muK CMB
(below :data:`MIN_RMS_UK` or above :data:`MAX_RMS_UK`: a K_CMB map has an RMS of ~1e-4) is
refused with a message naming ``--unit``.
"""

from __future__ import annotations

import re

import astropy.units as u
import numpy as np

from convsuite.core_ops.io import InputError

__all__ = ["MAX_RMS_UK", "MIN_RMS_UK", "check_plausible_uk", "uk_per_unit"]

MIN_RMS_UK = 1.0
MAX_RMS_UK = 1e5
_CMB = re.compile(r"[\s_-]*\(?\s*(cmb|thermo|th)\s*\)?\s*$", re.IGNORECASE)
_RJ = re.compile(r"[\s_-]*\(?\s*(rj|ant|antenna|krj)\s*\)?\s*$", re.IGNORECASE)


def uk_per_unit(unit: str, source: object = "--unit") -> float:
    """The factor taking values in ``unit`` to muK (thermodynamic CMB temperature).

    Args:
        unit: e.g. "K_CMB", "Kcmb", "mK_CMB", "uK_CMB", "muK", "μK", "K".
        source: the file (or option) it came from, for the message.

    Raises:
        InputError: not a temperature, or a Rayleigh-Jeans one.
    """
    text = unit.strip()
    if _RJ.search(text) or text.upper().endswith("KRJ"):
        raise InputError(
            source,
            f"unit {unit!r} is a Rayleigh-Jeans temperature: convert the map to K_CMB (the "
            "factor depends on the frequency) or give --unit",
        )
    text = _CMB.sub("", text)
    text = re.sub(r"^(micro|mu|µ|μ)", "u", text)
    try:
        return float(f"{u.Unit(text, parse_strict='raise').to(u.uK):.12g}")
    except (ValueError, u.UnitConversionError):
        raise InputError(
            source,
            f"unit {unit!r} is not a CMB temperature (K_CMB, mK_CMB, uK_CMB, muK...): give the "
            "map's unit with --unit",
        ) from None


def check_plausible_uk(source: object, values: np.ndarray, observed: np.ndarray) -> None:
    """Refuse a map without a unit whose observed RMS is implausible for muK CMB.

    Raises:
        InputError: RMS (mean removed) below :data:`MIN_RMS_UK` or above :data:`MAX_RMS_UK`.
    """
    seen = np.asarray(values, dtype=np.float64)[np.asarray(observed, dtype=bool)]
    if not seen.size or not np.all(np.isfinite(seen)):
        return  # left to the checks of the observed pixels
    rms = float(seen.std())
    if not MIN_RMS_UK <= rms <= MAX_RMS_UK:
        raise InputError(
            source,
            f"has no unit (TUNIT) and an observed RMS of {rms:.3g}, implausible for a CMB map in "
            f"muK ({MIN_RMS_UK:g} to {MAX_RMS_UK:g}): give its unit with --unit (e.g. --unit "
            "K_CMB)",
        )
