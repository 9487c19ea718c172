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
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import healpy as hp
import numpy as np
from astropy.io import fits

from convsuite.core_ops.io import InputError, atomic_path, check_budget

__all__ = [
    "MAX_MAP_BYTES",
    "MIN_PARTIAL_FRACTION",
    "SkyMap",
    "hole_pixels",
    "nside_of",
    "read_sky_map",
    "sky_map_nside",
    "write_sky_map",
]

MAX_MAP_BYTES = 4 * 2**30
"""Default memory budget of one map's inpainting, checked from the header before reading:
Nside 2048 fits (3.0 GiB at :data:`_BYTES_PER_PIXEL`), Nside 4096 (12 GiB) does not."""
_BYTES_PER_PIXEL = 64  # peak memory of cosmo-inpaint per map pixel (3.1 GB measured at Nside 2048)
MIN_PARTIAL_FRACTION = 0.01
"""The least share of the sphere an explicit-index (partial-sky) file must hold."""
_INDEX_COLUMNS = ("PIXEL", "PIX", "INDEX")
_WRITE_ROWS = 1 << 18  # table rows per memory map when a column is written in place (5 MB of a
# Planck file: 4096 rows made 12288 maps and flushes at Nside 2048, 3 s)

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
        columns: every column of the file (a Planck map's I_STOKES, Q_STOKES, U_STOKES, TMASK,
            PMASK): with more than one, :func:`write_sky_map` copies the others from ``source``.
    """

    values: np.ndarray
    observed: np.ndarray
    ordering: str = "NESTED"
    unit: str = ""
    column: str = "TEMPERATURE"
    header: list[tuple[str, object, str]] = field(default_factory=list)
    source: str = "map"
    infinite: np.ndarray | None = None
    columns: tuple[str, ...] = ()

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


@dataclass(frozen=True)
class _Layout:
    """What a HEALPix FITS file's header says, checked before any pixel is decoded."""

    nside: int
    explicit: bool
    index: int
    columns: tuple[str, ...]
    column: str
    unit: str
    ordering: str
    header: list[tuple[str, object, str]]


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Read ``path`` with astropy's and healpy's warnings held: folded into the one-line
    :class:`InputError` when the read fails (astropy would print each on its own line through its
    logger), issued again once it succeeds. Other errors of the FITS layer become InputErrors."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except InputError as error:
            notes = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
            if not notes:
                raise
            raise InputError(
                error.source, f"{error.problem} (warned: {'; '.join(notes)})"
            ) from None
    for warning in caught:
        warnings.warn(warning.message, warning.category, stacklevel=3)


def _nside_card(path: Path, card: object) -> int:
    try:
        nside = int(card)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise InputError(path, f"NSIDE card is {card!r}, not an integer") from None
    if nside < 1 or nside & (nside - 1):
        raise InputError(path, f"NSIDE card says {nside}: not a power of 2")
    return nside


def _column_index(path: Path, field: int | str, names: list[str]) -> int:
    """The index of ``field`` (an index, or a column name, case-insensitive) among ``names``."""
    if isinstance(field, str) and not field.strip().lstrip("-").isdigit():
        upper = [n.upper() for n in names]
        if field.strip().upper() not in upper:
            raise InputError(path, f"no column {field!r}: the file has {names}")
        return upper.index(field.strip().upper())
    index = int(field)
    if not 0 <= index < len(names):
        raise InputError(path, f"no field {index}: the file has {len(names)} ({names})")
    return index


def _layout(path: Path, field: int | str, max_bytes: int) -> _Layout:
    """The header's facts, checked: a binary table of the right size for its Nside (the file not
    cut short, explicit pixel indices on the sphere and not too few of them), within the memory
    budget. Reads no pixel values (only the pixel indices of an explicit-index file)."""
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with fits.open(path) as hdus:
            if len(hdus) < 2 or not isinstance(hdus[1], fits.BinTableHDU):
                raise InputError(path, "no binary table extension: not a HEALPix FITS map")
            table = hdus[1]
            cards = table.header
            names = table.columns.names
            explicit = str(cards.get("INDXSCHM", "IMPLICIT")).upper() == "EXPLICIT"
            data_names = [n for n in names if n.upper() not in _INDEX_COLUMNS]
            index = _column_index(path, field, data_names if explicit else list(names))
            column = data_names[index] if explicit else names[index]
            rows, width = int(cards.get("NAXIS2", 0)), int(cards.get("NAXIS1", 0))
            needed = table.fileinfo()["datLoc"] + rows * width + int(cards.get("PCOUNT", 0))
            if path.stat().st_size < needed:
                raise InputError(
                    path, f"is cut short: {path.stat().st_size} bytes, its header needs {needed}"
                )
            present = rows * table.columns[column].format.repeat
            if explicit:
                if "NSIDE" not in cards:
                    raise InputError(
                        path, "an explicit-index (partial-sky) file needs an NSIDE card"
                    )
                nside = _nside_card(path, cards["NSIDE"])
            else:
                nside = nside_of(present, path)
                if "NSIDE" in cards and _nside_card(path, cards["NSIDE"]) != nside:
                    raise InputError(
                        path,
                        f"NSIDE card says {cards['NSIDE']} but the file holds {present} pixels "
                        f"(Nside {nside})",
                    )
            npix = 12 * nside * nside
            what = f"inpainting a full-sky Nside {nside} map"
            check_budget(path, npix * _BYTES_PER_PIXEL, what, max_bytes)
            if explicit:
                _check_explicit(path, table, present, nside)
            layout = _Layout(
                nside,
                explicit,
                index,
                tuple(names),
                column,
                table.columns[column].unit or "",
                str(cards.get("ORDERING", "RING")).strip().upper(),
                [
                    (card.keyword, card.value, card.comment)
                    for card in cards.cards
                    if card.keyword not in _LAYOUT_KEYS
                    and not card.keyword.startswith(_LAYOUT_PREFIXES)
                ],
            )
    except InputError:
        raise
    except (OSError, ValueError, KeyError) as error:  # astropy's errors for broken files
        raise InputError(path, f"not a readable FITS file ({error})") from None
    if layout.ordering not in ("RING", "NESTED"):
        raise InputError(path, f"ORDERING is {layout.ordering!r}, expected RING or NESTED")
    return layout


def _check_explicit(path: Path, table: fits.BinTableHDU, present: int, nside: int) -> None:
    """An explicit-index file's pixels: on the sphere, and enough of it to inpaint from."""
    npix = 12 * nside * nside
    if present < MIN_PARTIAL_FRACTION * npix:
        raise InputError(
            path,
            f"holds {present} of the {npix} pixels of an Nside {nside} sky ({present / npix:.2g}"
            f" of it): too few to inpaint a full sky from (at least {MIN_PARTIAL_FRACTION:.0%})",
        )
    index = [n for n in table.columns.names if n.upper() in _INDEX_COLUMNS]
    if not index:
        raise InputError(path, "an explicit-index (partial-sky) file needs a PIXEL column")
    pixels = np.asarray(table.data[index[0]])
    if pixels.size and (pixels.min() < 0 or pixels.max() >= npix):
        raise InputError(
            path, f"pixel index {pixels.max()} is not on an Nside {nside} sky (0..{npix - 1})"
        )


def sky_map_nside(
    path: str | os.PathLike[str], field: int | str = 0, max_bytes: int = MAX_MAP_BYTES
) -> int:
    """The Nside of a HEALPix FITS map from its header, after the checks :func:`read_sky_map`
    makes before decoding it (for a quick look at many files before reading any).

    Raises:
        InputError: as :func:`read_sky_map`, for what the header shows.
    """
    path = Path(path)
    with _reading(path):
        return _layout(path, field, max_bytes).nside


def read_sky_map(
    path: str | os.PathLike[str], field: int | str = 0, max_bytes: int = MAX_MAP_BYTES
) -> SkyMap:
    """Read one field of a HEALPix FITS map, keeping what is needed to write the result back.

    The header is checked before any pixel is decoded: a file cut short, an NSIDE card that does
    not match the pixels present, explicit pixel indices off the sphere or covering less than
    :data:`MIN_PARTIAL_FRACTION` of it, or a map whose inpainting would need more than
    ``max_bytes`` (a 9 KB partial-sky file can claim Nside 4096) are refused at once.

    Args:
        path: a HEALPix FITS file (RING or NESTED; implicit or explicit indexing).
        field: the column to read: its index (0 = the first, the temperature of a T/Q/U file)
            or its name (TTYPE, e.g. "I_STOKES", "TMASK"; any case).
        max_bytes: memory budget of the map's inpainting (about 64 bytes a pixel); default
            :data:`MAX_MAP_BYTES`, enough for Nside 2048.

    Raises:
        InputError: the file is missing or unreadable, has no such field, is not a HEALPix pixel
            count, or fails a header check above; the message is one line, with any warning
            astropy or healpy gave on the way.
    """
    path = Path(path)
    with _reading(path):
        layout = _layout(path, field, max_bytes)
        try:
            values = hp.read_map(
                path, field=layout.index, nest=None, partial=layout.explicit, dtype=None
            )
        except Exception as error:  # healpy raises bare Exceptions and ValueErrors for bad layouts
            raise InputError(path, f"not a HEALPix map ({error})") from None
    values = np.asarray(values, dtype=np.float64)  # native byte order from here on
    if values.size != 12 * layout.nside**2:
        raise InputError(path, f"healpy read {values.size} pixels, Nside {layout.nside} has more")
    infinite = np.isinf(values)
    holes = hole_pixels(values)
    if layout.ordering == "RING":
        values, holes = hp.reorder(values, r2n=True), hp.reorder(holes, r2n=True)
        infinite = hp.reorder(infinite, r2n=True)
    values = np.where(holes, 0.0, values).astype(np.float32)
    return SkyMap(
        values,
        ~holes,
        layout.ordering,
        layout.unit,
        layout.column,
        layout.header,
        str(path),
        infinite if infinite.any() else None,
        () if layout.explicit else layout.columns,
    )


def write_sky_map(sky: SkyMap, path: str | os.PathLike[str], history: str = "") -> Path:
    """Write ``sky.values`` as a full-sky HEALPix FITS map, atomically, the way it was read.

    Ordering, column name, unit and the input's non-layout header cards are those of ``sky``;
    ``history`` adds a HISTORY card. Every pixel is written (nothing UNSEEN). A map read from a
    file of several columns is written as that file with its column replaced, the other columns
    (and headers) copied unchanged.
    """
    values = np.asarray(sky.values, dtype=np.float32)
    nest = sky.ordering == "NESTED"
    if not nest:
        values = hp.reorder(values, n2r=True)
    if len(sky.columns) > 1:
        return _write_replacing_column(sky, values, Path(path), history)
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


def _write_replacing_column(sky: SkyMap, values: np.ndarray, path: Path, history: str) -> Path:
    """``sky.source`` copied, then ``sky.column`` overwritten in place with ``values`` (the file's
    ordering): the other columns are never decoded (a Planck map's five columns at Nside 2048
    are 1 GB). The column's bytes are written through memory maps of :data:`_WRITE_ROWS` rows
    at a time: one map of the whole table kept every page of it resident (1 GB more peak
    memory at Nside 2048). A scaled column (TSCAL/TZERO) goes through astropy's table instead."""
    with atomic_path(path) as tmp:
        shutil.copyfile(sky.source, tmp)
        if history:
            with fits.open(tmp, mode="update", memmap=True) as hdus:
                hdus[1].header.add_history(history)
        with fits.open(tmp, memmap=True) as hdus:
            table = hdus[1]
            start = table.fileinfo()["datLoc"]
            width, rows = int(table.header["NAXIS1"]), int(table.header["NAXIS2"])
            column = table.columns[sky.column]
            scaled = column.bscale not in (None, 1) or column.bzero not in (None, 0)
            kind, offset = table.columns.dtype.fields[column.name][:2]
        if scaled:
            with fits.open(tmp, mode="update", memmap=True) as hdus:
                target = hdus[1].data[sky.column]
                target[...] = values.reshape(target.shape)
            return path
        per_row = values.reshape(rows, -1)
        element = kind.base.newbyteorder(">") if kind.base.byteorder != "|" else kind.base
        for first in range(0, rows, _WRITE_ROWS):
            count = min(_WRITE_ROWS, rows - first)
            block = np.memmap(
                tmp, np.uint8, "r+", offset=start + first * width, shape=(count, width)
            )
            chunk = per_row[first : first + count].astype(element)
            block[:, offset : offset + chunk.itemsize * chunk.shape[1]] = chunk.view(
                np.uint8
            ).reshape(count, -1)
            block.flush()
            del block
    return path
