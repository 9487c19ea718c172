"""HEALPix FITS maps in and out, with healpy: any ordering, any field, partial-sky files, holes.

A :class:`SkyMap` holds one field of a HEALPix map in NESTED ordering (the order of the 12 base
faces the network works on) as native-byte-order float32, which pixels were observed, and what is
needed to write a result the way the input was written: the file's ordering (RING or NESTED), the
column name and unit, and the header cards that are not about the table layout.

Holes in the input are ``healpy.UNSEEN`` pixels, NaNs, and the pixels a partial-sky
(explicit-index) file leaves out; healpy reads all of them as UNSEEN or NaN.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from convsuite.core_ops.io import InputError, atomic_path

__all__ = ["SkyMap", "hole_pixels", "nside_of", "read_sky_map", "write_sky_map"]

# Header cards healpy writes itself (table layout, pixelisation): not carried over from the input.
_LAYOUT_KEYS = {
    "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS", "PIXTYPE",
    "ORDERING", "NSIDE", "FIRSTPIX", "LASTPIX", "INDXSCHM", "OBJECT", "EXTNAME", "GRAIN",
    "POLCCONV", "POLAR", "BAD_DATA", "COMMENT", "HISTORY", "",
}  # fmt: skip
_LAYOUT_PREFIXES = ("TTYPE", "TFORM", "TUNIT", "TNULL", "TSCAL", "TZERO", "TDIM")


def hole_pixels(values: np.ndarray) -> np.ndarray:
    """Where a map read by healpy has no data: NaN, +-inf or UNSEEN (bool, same shape)."""
    return ~np.isfinite(values) | np.isclose(values, hp.UNSEEN, rtol=1e-6)


def nside_of(npix: int, source: str | os.PathLike[str] = "map") -> int:
    """Nside of a full-sky map of ``npix`` pixels; InputError when ``npix`` is not 12 Nside^2."""
    nside = int(round(np.sqrt(npix / 12)))
    if 12 * nside * nside != npix or nside < 1 or nside & (nside - 1):
        raise InputError(source, f"{npix} pixels is not a HEALPix map (12 Nside^2, Nside 2^k)")
    return nside


@dataclass
class SkyMap:
    """One field of a HEALPix map, NESTED, with its observed pixels and its file's metadata.

    Attributes:
        values: (12 nside^2,) float32, native byte order, NESTED ordering, in ``unit``; holes hold 0.
        observed: (12 nside^2,) bool, NESTED; False at UNSEEN, NaN and masked pixels.
        ordering: "RING" or "NESTED": the ordering the file had (results are written in it).
        unit: the column's unit (TUNIT), e.g. "uK_CMB"; "" when the file gives none.
        column: the column's name (TTYPE).
        header: the file's non-layout header cards, (key, value, comment), kept in the output.
        source: the file it came from (error messages), or a name.
        infinite: (12 nside^2,) bool NESTED, the +-inf pixels (holes too, but an error unless a
            mask covers them: see :func:`convsuite.cosmo.data.apply_mask`); None: none.
    """

    values: np.ndarray
    observed: np.ndarray
    ordering: str = "NESTED"
    unit: str = ""
    column: str = "TEMPERATURE"
    header: list[tuple[str, object, str]] = field(default_factory=list)
    source: str = "map"
    infinite: np.ndarray | None = None

    @property
    def nside(self) -> int:
        """HEALPix resolution parameter."""
        return hp.npix2nside(self.values.size)

    @property
    def f_sky(self) -> float:
        """Observed fraction of the sky."""
        return float(self.observed.mean())

    def replace(self, **changes: object) -> SkyMap:
        """A copy with fields replaced (e.g. the inpainted ``values``)."""
        return dataclasses.replace(self, **changes)


def read_sky_map(path: str | os.PathLike[str], field: int = 0) -> SkyMap:
    """Read one field of a HEALPix FITS map, keeping what is needed to write the result back.

    Args:
        path: a HEALPix FITS file (RING or NESTED; implicit or explicit indexing).
        field: the column to read (0 = the first, the temperature of a T/Q/U file).

    Raises:
        InputError: the file is missing or unreadable, has no such field, is not a HEALPix pixel
            count.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with fits.open(path) as hdus:
            if len(hdus) < 2 or not isinstance(hdus[1], fits.BinTableHDU):
                raise InputError(path, "no binary table extension: not a HEALPix FITS map")
            table = hdus[1]
            names = table.columns.names
            explicit = str(table.header.get("INDXSCHM", "IMPLICIT")).upper() == "EXPLICIT"
            data_names = [n for n in names if n.upper() not in ("PIXEL", "PIX", "INDEX")]
            if explicit and not (0 <= field < len(data_names)):
                raise InputError(path, f"no field {field}: the file has {len(data_names)}")
            if not explicit and not (0 <= field < len(names)):
                raise InputError(path, f"no field {field}: the file has {len(names)} ({names})")
            column = data_names[field] if explicit else names[field]
            unit = table.columns[column].unit or ""
            header = [
                (card.keyword, card.value, card.comment)
                for card in table.header.cards
                if card.keyword not in _LAYOUT_KEYS
                and not card.keyword.startswith(_LAYOUT_PREFIXES)
            ]
            ordering = str(table.header.get("ORDERING", "RING")).strip().upper()
            nside_card = table.header.get("NSIDE")
    except InputError:
        raise
    except OSError as error:
        raise InputError(path, f"not a readable FITS file ({error})") from None
    if ordering not in ("RING", "NESTED"):
        raise InputError(path, f"ORDERING is {ordering!r}, expected RING or NESTED")
    try:
        values = hp.read_map(path, field=field, nest=None, partial=explicit, dtype=None)
    except Exception as error:  # healpy raises bare Exceptions and ValueErrors for bad layouts
        raise InputError(path, f"not a HEALPix map ({error})") from None
    values = np.asarray(values, dtype=np.float64)  # native byte order from here on
    nside = nside_of(values.size, path)
    if nside_card is not None and int(nside_card) != nside:
        raise InputError(path, f"NSIDE card says {int(nside_card)} but the data has Nside {nside}")
    infinite = np.isinf(values)
    holes = hole_pixels(values)
    if ordering == "RING":
        values, holes = hp.reorder(values, r2n=True), hp.reorder(holes, r2n=True)
        infinite = hp.reorder(infinite, r2n=True)
    values = np.where(holes, 0.0, values).astype(np.float32)
    return SkyMap(
        values,
        ~holes,
        ordering,
        unit,
        column,
        header,
        str(path),
        infinite if infinite.any() else None,
    )


def write_sky_map(sky: SkyMap, path: str | os.PathLike[str], history: str = "") -> Path:
    """Write ``sky.values`` as a full-sky HEALPix FITS map, atomically, the way it was read.

    Ordering, column name, unit and the input's non-layout header cards are those of ``sky``;
    ``history`` adds a HISTORY card. Every pixel is written (nothing UNSEEN).
    """
    values = np.asarray(sky.values, dtype=np.float32)
    nest = sky.ordering == "NESTED"
    if not nest:
        values = hp.reorder(values, n2r=True)
    extra = [(key, value, comment) for key, value, comment in sky.header]
    if history:
        extra.append(("HISTORY", history, ""))
    path = Path(path)
    with atomic_path(path) as tmp:
        hp.write_map(
            str(tmp),
            values,
            nest=nest,
            dtype=np.float32,
            column_names=[sky.column],
            column_units=sky.unit or None,
            extra_header=[(k, v) if not c else (k, v, c) for k, v, c in extra],
            overwrite=True,
        )
    return path
