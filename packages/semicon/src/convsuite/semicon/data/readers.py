"""Readers and writers of wafer defect maps: full-resolution defect lists and WM-811K.

Full-resolution defect list, ``.csv``: one defect per row, columns ``x, y`` in mm, origin at the
wafer centre, y up (further columns, e.g. a defect size, are ignored). The wafer geometry comes from
``# key: value`` comment lines at the top, which is what :func:`write_wafer_csv` writes::

    # diameter_mm: 300
    # pitch_mm: 0.0732421875
    # label: scratch
    x,y
    -12.0849609,40.3198242
    ...

or, for files written by other tools, from a JSON sidecar ``<stem>.json`` with the same keys
(``{"diameter_mm": 300, "pitch_mm": 0.1}``). Keys present in both must agree. ``label`` is optional.
Defects are snapped to a square grid of side ``round(diameter / pitch)`` cells; several defects in
one cell become one defective cell.

The same content as ``.npz``: arrays ``x``, ``y`` (mm) and scalars ``diameter_mm``, ``pitch_mm``,
optional ``label`` (a string array). The map's name is the file stem.

WM-811K (Wu et al. 2015, ``LSWMD.pkl``): a pickled pandas DataFrame of 811,457 die maps, column
``waferMap`` (uint8 2-D: 0 off-wafer, 1 pass die, 2 fail die) and ``failureType`` (``[['Center']]``,
or an empty array when unlabelled). Loading a pickle runs code from the file: read only pickles you
trust. The whole DataFrame is loaded at once (about 2 GB for LSWMD); maps are then yielded one by one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_write, check_budget
from convsuite.semicon.data.wafer_map import WaferMap, mm_to_grid, normalize_label

__all__ = [
    "HEADER_KEYS",
    "NPZ_BUDGET",
    "WM811KRecord",
    "iter_wm811k",
    "read_wafer_map",
    "read_wafer_maps",
    "read_wm811k",
    "write_wafer_csv",
    "write_wafer_npz",
]

log = logging.getLogger(__name__)

HEADER_KEYS = ("diameter_mm", "pitch_mm", "label", "grid_rows", "grid_cols")
"""Keys of the ``# key: value`` CSV header, the JSON sidecar and the ``.npz`` scalars.
``grid_rows`` and ``grid_cols`` (optional, together) give a grid that is not the square of side
``round(diameter / pitch)``: a WM-811K die map's H x W dies."""

_SUFFIXES = (".csv", ".npz")
_MAX_GRID_SIDE = 1 << 20
"""Largest grid side accepted from a file (a sanity limit against unit mix-ups)."""
_NPZ_REQUIRED = ("x", "y", "diameter_mm", "pitch_mm")
NPZ_BUDGET = 1 << 28
"""Most bytes the arrays read from one ``.npz`` may decode to (256 MiB: 16 million defects as
float64 x and y, every cell of a 4096 grid), checked from the ``.npy`` headers before reading."""


# --- full-resolution defect lists ----------------------------------------------------------------


def read_wafer_map(path: str | os.PathLike[str]) -> WaferMap:
    """Read one full-resolution defect list (``.csv`` or ``.npz``) and snap it to its grid.

    Args:
        path: the file; its stem becomes the map's name.

    Returns:
        The map on a square grid of side ``round(diameter_mm / pitch_mm)`` cells.

    Raises:
        InputError: missing file, unknown suffix, empty map, missing or wrong columns or header
            keys, NaN coordinates, defects outside the wafer, unknown label.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        x, y, header = _read_csv(path)
    elif suffix == ".npz":
        x, y, header = _read_npz(path)
    else:
        raise InputError(path, f"unknown format {path.suffix!r}; expected .csv or .npz")
    return _snap(path, x, y, header)


def read_wafer_maps(paths: Iterable[str | os.PathLike[str]]) -> Iterator[WaferMap]:
    """Read many defect lists lazily; a folder stands for its ``.csv`` and ``.npz`` files, sorted.

    Raises:
        InputError: as :func:`read_wafer_map`, when the bad file is reached.
    """
    for entry in paths:
        entry = Path(entry)
        if entry.is_dir():
            for path in sorted(p for p in entry.iterdir() if p.suffix.lower() in _SUFFIXES):
                yield read_wafer_map(path)
        else:
            yield read_wafer_map(entry)


def write_wafer_csv(path: str | os.PathLike[str], wafer_map: WaferMap) -> Path:
    """Write a map as a defect-list CSV with a ``# key: value`` header, atomically.

    Each defective cell is written as its centre in mm, with enough decimals that
    :func:`read_wafer_map` gives back the same cells; pitch and diameter keep full precision.

    Returns:
        ``path``.
    """
    path = Path(path)
    _check_writable(path, wafer_map)
    xy = wafer_map.xy_mm()
    decimals = max(4, math.ceil(-math.log10(wafer_map.pitch_mm)) + 3)
    row = f"%.{decimals}f,%.{decimals}f\n"
    with atomic_write(path) as handle:
        for key, value in _header(wafer_map).items():
            handle.write(f"# {key}: {value}\n")
        handle.write("x,y\n")
        for start in range(0, len(xy), 65536):  # one %-format per block: 5x faster than pandas
            block = xy[start : start + 65536]
            handle.write((row * len(block)) % tuple(block.ravel().tolist()))
    return path


def write_wafer_npz(path: str | os.PathLike[str], wafer_map: WaferMap) -> Path:
    """Write a map as ``.npz`` (``x``, ``y`` cell centres in mm and the header scalars), atomically.

    Returns:
        ``path``.
    """
    path = Path(path)
    _check_writable(path, wafer_map)
    xy = wafer_map.xy_mm()
    arrays: dict[str, np.ndarray] = {
        "x": xy[:, 0],
        "y": xy[:, 1],
        "diameter_mm": np.float64(wafer_map.diameter_mm),
        "pitch_mm": np.float64(wafer_map.pitch_mm),
    }
    if wafer_map.label is not None:
        arrays["label"] = np.str_(wafer_map.label)
    if not _square(wafer_map):
        arrays["grid_rows"], arrays["grid_cols"] = (np.int64(n) for n in wafer_map.grid_shape)
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def _check_writable(path: Path, wafer_map: WaferMap) -> None:
    height, width = wafer_map.grid_shape
    if round(wafer_map.diameter_mm / wafer_map.pitch_mm) != max(height, width):
        raise ValueError(
            f"{path}: a defect list stores diameter and pitch, so the grid's longer side must be "
            f"round(diameter / pitch) = {round(wafer_map.diameter_mm / wafer_map.pitch_mm)}; "
            f"this map's grid is {height} x {width}"
        )


def _square(wafer_map: WaferMap) -> bool:
    height, width = wafer_map.grid_shape
    return height == width


def _header(wafer_map: WaferMap) -> dict[str, str]:
    header = {"diameter_mm": repr(wafer_map.diameter_mm), "pitch_mm": repr(wafer_map.pitch_mm)}
    if wafer_map.label is not None:
        header["label"] = wafer_map.label
    if not _square(wafer_map):
        header["grid_rows"], header["grid_cols"] = map(str, wafer_map.grid_shape)
    return header


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    header = _merge_sidecar(path, _comment_header(path))
    try:
        frame = pd.read_csv(path, comment="#", skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(path, "empty wafer map (no defect rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise InputError(path, f"is not a readable defect-list CSV ({reason})") from None
    columns = [str(column).strip() for column in frame.columns]
    frame.columns = [column.lower() for column in columns]
    if "x" not in frame.columns or "y" not in frame.columns:
        raise InputError(path, f"expected columns x, y (mm); found {', '.join(columns) or 'none'}")
    if len(frame) == 0:
        raise InputError(path, "empty wafer map (no defect rows)")
    return _numeric(path, frame, "x"), _numeric(path, frame, "y"), header


def _numeric(path: Path, frame: pd.DataFrame, column: str) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna() & frame[column].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            path,
            f"column {column} has non-numeric values (first {frame[column].iloc[row]!r} "
            f"in data row {row + 1})",
        )
    return values.to_numpy(dtype=np.float64)


def _comment_header(path: Path) -> dict[str, str]:
    """``# key: value`` lines before the first data line; other comments are ignored."""
    header: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                stripped = line.strip()
                if not stripped:
                    continue
                if not stripped.startswith("#"):
                    break
                key, sep, value = stripped.lstrip("#").partition(":")
                if sep and key.strip().lower() in HEADER_KEYS:
                    header[key.strip().lower()] = value.strip()
    except UnicodeDecodeError:
        raise InputError(path, "is not a text CSV file (not UTF-8)") from None
    return header


def _merge_sidecar(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    sidecar = path.with_suffix(".json")
    if not sidecar.is_file():
        return header
    try:
        extra = json.loads(sidecar.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(sidecar, f"is not valid JSON ({error})") from None
    if not isinstance(extra, dict):
        raise InputError(sidecar, 'must hold a JSON object such as {"diameter_mm": 300, ...}')
    merged = dict(header)
    for key, value in extra.items():
        key = str(key).lower()
        if key not in HEADER_KEYS:
            continue
        if key in merged and not _same(merged[key], value):
            raise InputError(
                path, f"header says {key} {merged[key]} but sidecar {sidecar.name} says {value}"
            )
        merged.setdefault(key, value)
    return merged


def _same(a: Any, b: Any) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-12)
    except (TypeError, ValueError):
        return str(a).strip().lower() == str(b).strip().lower()


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The arrays of a map's ``.npz``, read alone: other arrays in the archive are never decoded,
    and the sizes the ``.npy`` headers claim are checked against :data:`NPZ_BUDGET` first."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = {
                name.removesuffix(".npy"): name
                for name in archive.namelist()
                if name.endswith(".npy")
            }
            missing = [key for key in _NPZ_REQUIRED if key not in members]
            if missing:
                found = ", ".join(sorted(members)) or "none"
                raise InputError(
                    path,
                    f"expected arrays x, y, diameter_mm, pitch_mm; missing {', '.join(missing)}; "
                    f"found {found}",
                )
            wanted = [key for key in HEADER_KEYS + ("x", "y") if key in members]
            sizes = {key: _npy_size(path, archive, key, members[key]) for key in wanted}
            for key in HEADER_KEYS:
                if key in sizes and sizes[key][0] != 1:
                    raise InputError(path, f"{key} must be a scalar, got {sizes[key][0]} values")
            check_budget(
                path, sum(nbytes for _, nbytes in sizes.values()), "its arrays x, y", NPZ_BUDGET
            )
            content = {key: _npy_read(archive, members[key]) for key in wanted}
    except InputError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise InputError(path, f"is not a readable .npz file ({error})") from None
    x, y = (np.asarray(content[key]).ravel() for key in ("x", "y"))
    if len(x) != len(y):
        raise InputError(path, f"arrays x and y differ in length ({len(x)} and {len(y)})")
    if len(x) == 0:
        raise InputError(path, "empty wafer map (no defects)")
    header = {key: np.asarray(content[key]).item() for key in HEADER_KEYS if key in content}
    try:
        return x.astype(np.float64), y.astype(np.float64), header
    except (TypeError, ValueError):
        raise InputError(path, "arrays x and y must be numeric") from None


def _npy_size(path: Path, archive: zipfile.ZipFile, key: str, member: str) -> tuple[int, int]:
    """(values, bytes) that array ``key`` would take, from its ``.npy`` header alone."""
    with archive.open(member) as handle:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise InputError(path, f"array {key}: .npy format {version} is not supported")
    if dtype.hasobject:
        raise InputError(path, f"array {key} holds Python objects (a pickle); refusing to load it")
    values = math.prod(shape)
    return values, values * dtype.itemsize


def _npy_read(archive: zipfile.ZipFile, member: str) -> np.ndarray:
    with archive.open(member) as handle:
        return np.lib.format.read_array(handle, allow_pickle=False)


def _positive(path: Path, header: dict[str, Any], key: str) -> float:
    if key not in header:
        raise InputError(
            path,
            f"no {key}: give it in a '# {key}: ...' header line or a sidecar "
            f"{path.with_suffix('.json').name}",
        )
    try:
        value = float(header[key])
    except (TypeError, ValueError):
        raise InputError(path, f"{key} must be a number, got {header[key]!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise InputError(path, f"{key} must be a positive number, got {header[key]!r}")
    return value


def _snap(path: Path, x: np.ndarray, y: np.ndarray, header: dict[str, Any]) -> WaferMap:
    diameter = _positive(path, header, "diameter_mm")
    pitch = _positive(path, header, "pitch_mm")
    ratio = diameter / pitch  # inf for a denormal pitch such as 1e-320
    if not (math.isfinite(ratio) and 1.5 <= ratio < _MAX_GRID_SIDE + 0.5):
        raise InputError(
            path,
            f"grid side round(diameter_mm / pitch_mm) = {ratio:.6g} is outside [2, "
            f"{_MAX_GRID_SIDE}]; are both in mm?",
        )
    side = round(ratio)
    shape = _grid_shape(path, header, side)
    label = normalize_label(header.get("label"), path)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise InputError(
            path,
            f"{int((~finite).sum())} defects have NaN or infinite coordinates "
            f"(first in data row {first + 1})",
        )
    xy = np.stack([x, y], axis=1)
    radius = diameter / 2.0
    # A point counts as on the wafer when within the disk, give or take half a cell diagonal (tools
    # that report cell centres); what reaches the grid is checked again by from_coordinates.
    outside = np.hypot(x, y) > radius + pitch * math.sqrt(0.5)
    if outside.any():
        raise InputError(
            path,
            f"{int(outside.sum())} of {len(x)} defects lie outside the wafer "
            f"(radius {radius:g} mm; largest distance {np.hypot(x, y).max():g} mm)",
        )
    coords = mm_to_grid(xy, shape, pitch)
    return WaferMap.from_coordinates(
        coords, shape, pitch, diameter, label=label, name=path.stem, source=path
    )


def _grid_shape(path: Path, header: dict[str, Any], side: int) -> tuple[int, int]:
    """(side, side), or the header's ``grid_rows`` x ``grid_cols`` (longer side ``side``)."""
    given = [key for key in ("grid_rows", "grid_cols") if key in header]
    if not given:
        return side, side
    if len(given) == 1:
        raise InputError(path, "grid_rows and grid_cols go together; only one is given")
    try:
        rows, cols = (int(str(header[key]).strip()) for key in ("grid_rows", "grid_cols"))
    except ValueError:
        raise InputError(path, "grid_rows and grid_cols must be whole numbers") from None
    if max(rows, cols) != side or min(rows, cols) < 1:
        raise InputError(
            path,
            f"grid {rows} x {cols} does not fit diameter / pitch = {side} cells (its longer side)",
        )
    return rows, cols


# --- WM-811K -------------------------------------------------------------------------------------

_WM811K_COLUMNS = ("waferMap", "failureType")

_MODULE_RENAMES = (("pandas.indexes", "pandas.core.indexes"),)
"""Module paths of pandas < 0.20 (when LSWMD.pkl was written) -> where they live now."""

_CLASS_RENAMES = {
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas", "Index"),
}


class _LegacyUnpickler(pickle.Unpickler):
    """Unpickler that finds pandas classes under the module paths of old pandas versions."""

    def find_class(self, module: str, name: str) -> Any:
        for old, new in _MODULE_RENAMES:
            if module == old or module.startswith(old + "."):
                module = new + module[len(old) :]
        module, name = _CLASS_RENAMES.get((module, name), (module, name))
        return super().find_class(module, name)


def _load_legacy_pickle(path: Path) -> Any:
    """Unpickle a Python 2 / old-pandas file: latin-1 strings and renamed pandas modules."""
    with open(path, "rb") as handle:
        return _LegacyUnpickler(handle, encoding="latin1").load()


def _load_dataframe(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_pickle(path)
    except (ModuleNotFoundError, ImportError, AttributeError, UnicodeDecodeError, TypeError):
        log.info(
            "%s: pandas could not unpickle it; retrying with latin-1 and old module names", path
        )
        try:
            frame = _load_legacy_pickle(path)
        except Exception as error:  # any unpickling failure is a bad input file here
            raise InputError(path, f"is not a readable pandas pickle ({error})") from None
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise InputError(path, f"is not a readable pandas pickle ({error})") from None
    if not isinstance(frame, pd.DataFrame):
        raise InputError(path, f"expected a pickled pandas DataFrame, got {type(frame).__name__}")
    missing = [column for column in _WM811K_COLUMNS if column not in frame.columns]
    if missing:
        found = ", ".join(str(column) for column in frame.columns) or "none"
        raise InputError(
            path,
            f"expected WM-811K columns waferMap, failureType; missing "
            f"{', '.join(missing)}; found {found}",
        )
    return frame


def _wm811k_label(value: Any) -> str | None:
    """``[['Center']]`` -> ``'Center'``; an empty array, None or NaN -> None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        return value.strip() or None
    flat = np.asarray(value, dtype=object).ravel()
    if flat.size == 0:
        return None
    text = str(flat[0]).strip()
    return text or None


def _wm811k_name(lot: str | None, wafer: int | None, index: Any) -> str:
    if lot and wafer is not None:
        return f"{lot}_w{wafer:02d}"
    return f"wm811k_{index}"


def _finite_int(value: Any) -> int | None:
    """``waferIndex``-like values (floats in LSWMD) -> int; None when missing or NaN."""
    try:
        number = float(np.asarray(value).ravel()[0]) if np.ndim(value) else float(value)
    except (TypeError, ValueError, IndexError):
        return None
    return int(number) if math.isfinite(number) else None


@dataclass(frozen=True)
class WM811KRecord:
    """One row of ``LSWMD.pkl``: the die map and the columns kept beside it.

    Attributes:
        map: the fail dies as a :class:`WaferMap` on the (H, W) die grid.
        row: the DataFrame's index value (its row label).
        lot: ``lotName`` (``""`` when absent).
        wafer_index: ``waferIndex`` (None when absent).
        split: ``trianTestLabel`` (sic): ``"Training"``, ``"Test"`` or ``""`` (unlabelled).
        die_size: ``dieSize``, dies on the wafer (NaN when absent).
        failure_type: ``failureType`` as spelled in the file (``"Edge-Ring"``; ``""`` when empty).
    """

    map: WaferMap
    row: Any
    lot: str
    wafer_index: int | None
    split: str
    die_size: float
    failure_type: str


def iter_wm811k(
    path: str | os.PathLike[str],
    labelled_only: bool = True,
    limit: int | None = None,
    diameter_mm: float = 300.0,
) -> Iterator[WM811KRecord]:
    """Read ``LSWMD.pkl`` (or a pickle of the same structure) row by row, with its columns.

    Dies are the grid cells: a map of shape (H, W) has ``pitch = diameter_mm / max(H, W)``, and its
    defects are the fail dies (value 2). Labels become :data:`PATTERNS` names (``Edge-Ring`` ->
    ``edge-ring``, ``none`` -> ``none``). Names are ``<lotName>_w<waferIndex>`` when those columns
    exist, else ``wm811k_<row index>``. A wafer without fail dies gives a map with no defects.
    ``lotName``, ``waferIndex``, ``trianTestLabel`` and ``dieSize`` are optional columns.

    Args:
        path: the pickle. Unpickling runs code from the file: use only files you trust.
        labelled_only: skip rows whose ``failureType`` is empty.
        limit: stop after this many maps (None: all).
        diameter_mm: wafer diameter; WM-811K does not record it (300 mm assumed).

    Yields:
        One :class:`WM811KRecord` per row, in file order.

    Raises:
        InputError: unreadable pickle, not a DataFrame, missing columns, a map that is not 2-D or
            has values other than 0/1/2 or fail dies off the wafer disk, an unknown label.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file does not exist")
    if limit is not None and limit <= 0:
        return
    frame = _load_dataframe(path)
    produced = 0
    for index, row in zip(frame.index, frame.itertuples(index=False), strict=True):
        raw_label = _wm811k_label(row.failureType)
        if raw_label is None and labelled_only:
            continue
        where = f"{path} row {index}"
        label = normalize_label(raw_label, where)
        die_map = np.asarray(row.waferMap)
        if die_map.ndim != 2 or die_map.size == 0:
            raise InputError(where, f"waferMap must be a 2-D die array, got shape {die_map.shape}")
        if not np.isin(die_map, (0, 1, 2)).all():
            raise InputError(where, "waferMap values must be 0 (no die), 1 (pass) or 2 (fail)")
        lot = getattr(row, "lotName", None)
        lot = lot.strip() if isinstance(lot, str) else ""
        wafer = _finite_int(getattr(row, "waferIndex", None))
        die_size = _finite_int(getattr(row, "dieSize", None))
        height, width = die_map.shape
        wafer_map = WaferMap.from_coordinates(
            np.argwhere(die_map == 2),
            (height, width),
            diameter_mm / max(height, width),
            diameter_mm,
            label=label,
            name=_wm811k_name(lot, wafer, index),
            source=where,
        )
        yield WM811KRecord(
            map=wafer_map,
            row=index,
            lot=lot,
            wafer_index=wafer,
            split=_wm811k_label(getattr(row, "trianTestLabel", None)) or "",
            die_size=float("nan") if die_size is None else float(die_size),
            failure_type=raw_label or "",
        )
        produced += 1
        if limit is not None and produced >= limit:
            return


def read_wm811k(
    path: str | os.PathLike[str],
    labelled_only: bool = True,
    limit: int | None = None,
    diameter_mm: float = 300.0,
) -> Iterator[WaferMap]:
    """The die maps of ``LSWMD.pkl``, one :class:`WaferMap` per row (see :func:`iter_wm811k`,
    which also gives the lot, wafer index, train/test split and die count).

    Raises:
        InputError: as :func:`iter_wm811k`.
    """
    for record in iter_wm811k(path, labelled_only, limit, diameter_mm):
        yield record.map
