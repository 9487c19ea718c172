"""The wafer defect map (WDM): a sparse list of defective sites on a square grid over a round wafer.

Geometry. A map lives on an (H, W) grid of square cells of side ``pitch_mm``; row 0 is the top
(largest y), column 0 the left (smallest x). The wafer is a disk of diameter ``diameter_mm`` centred
on the grid centre, so grid cell (row, col) covers, in wafer millimetres with the origin at the wafer
centre and y up::

    x in [(col - W/2) * pitch, (col + 1 - W/2) * pitch)
    y in ((H/2 - row - 1) * pitch, (H/2 - row) * pitch]

A cell belongs to the wafer when its square touches the disk (:func:`in_disk`). Every point of the
disk therefore falls in a wafer cell, whatever the pitch, and a full-resolution defect list snapped
to the grid never leaves the wafer.

For full-resolution maps the grid is square with side ``round(diameter / pitch)`` (4096 cells of
73 um on a 300 mm wafer). WM-811K die maps are small and often not square (e.g. 26 x 26, 45 x 48):
dies are the cells and ``pitch = diameter / max(H, W)``, so the disk spans the longer side.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np

from convsuite.core_ops.io import InputError

__all__ = [
    "PATTERNS",
    "WM811K_LABELS",
    "WaferMap",
    "grid_to_mm",
    "in_disk",
    "mm_to_grid",
    "normalize_label",
]

PATTERNS = (
    "center",
    "donut",
    "edge-ring",
    "edge-loc",
    "loc",
    "scratch",
    "random",
    "near-full",
    "none",
)
"""The defect-pattern vocabulary: the eight WM-811K failure types and ``none`` (no pattern)."""

WM811K_LABELS = {
    "Center": "center",
    "Donut": "donut",
    "Edge-Ring": "edge-ring",
    "Edge-Loc": "edge-loc",
    "Loc": "loc",
    "Scratch": "scratch",
    "Random": "random",
    "Near-full": "near-full",
    "none": "none",
}
"""WM-811K ``failureType`` spelling -> pattern name in :data:`PATTERNS`."""

_LABEL_LOOKUP = {key.lower(): value for key, value in WM811K_LABELS.items()} | {
    name: name for name in PATTERNS
}
_LABEL_LOOKUP |= {key.replace("-", "_"): value for key, value in _LABEL_LOOKUP.items()}

_DISK_TOLERANCE = 1e-9
"""Relative slack on the disk radius, so that cells exactly on the rim count as on the wafer."""


def normalize_label(label: str | None, source: str | os.PathLike[str] = "label") -> str | None:
    """Map a pattern label to its :data:`PATTERNS` name; WM-811K spellings and any case accepted.

    Args:
        label: ``"Edge-Ring"``, ``"edge-ring"``, ``"edge_ring"``, ... or None (unlabelled).
        source: the file the label came from, for the error message.

    Raises:
        InputError: the label is not one of the known patterns.
    """
    if label is None:
        return None
    key = str(label).strip().lower()
    if key not in _LABEL_LOOKUP:
        raise InputError(
            source, f"unknown label {str(label)!r}; expected one of {', '.join(PATTERNS)}"
        )
    return _LABEL_LOOKUP[key]


def _radius_cells(pitch_mm: float, diameter_mm: float) -> float:
    return diameter_mm / (2.0 * pitch_mm)


def in_disk(
    rows: np.ndarray, cols: np.ndarray, grid_shape: tuple[int, int], radius_cells: float
) -> np.ndarray:
    """Whether grid cells touch the wafer disk; arguments broadcast against each other.

    Args:
        rows: integer row indices, any shape.
        cols: integer column indices, broadcastable against ``rows``.
        grid_shape: (H, W) of the grid; the disk is centred at (H/2, W/2) in cell units.
        radius_cells: disk radius in cells, ``diameter_mm / (2 * pitch_mm)``.

    Returns:
        bool array of the broadcast shape: True where the nearest point of the cell's square lies
        within the disk. With ``rows`` (H, 1) and ``cols`` (1, W) only the bool result is (H, W).
    """
    height, width = grid_shape
    dy = np.maximum(np.abs(np.asarray(rows) + 0.5 - height / 2.0) - 0.5, 0.0)
    dx = np.maximum(np.abs(np.asarray(cols) + 0.5 - width / 2.0) - 0.5, 0.0)
    limit = (radius_cells * (1.0 + _DISK_TOLERANCE)) ** 2
    return dx * dx <= limit - dy * dy


def grid_to_mm(coords: np.ndarray, grid_shape: tuple[int, int], pitch_mm: float) -> np.ndarray:
    """Cell centres in wafer millimetres.

    Args:
        coords: (N, 2) int (row, col) cell indices.
        grid_shape: (H, W).
        pitch_mm: cell side in mm.

    Returns:
        (N, 2) float64 (x, y) in mm, origin at the wafer centre, y up.
    """
    coords = np.asarray(coords)
    height, width = grid_shape
    x = (coords[:, 1] + 0.5 - width / 2.0) * pitch_mm
    y = (height / 2.0 - coords[:, 0] - 0.5) * pitch_mm
    return np.stack([x, y], axis=1)


def mm_to_grid(xy_mm: np.ndarray, grid_shape: tuple[int, int], pitch_mm: float) -> np.ndarray:
    """Snap wafer millimetres to the cell that contains them.

    Args:
        xy_mm: (N, 2) float (x, y) in mm, origin at the wafer centre, y up; finite.
        grid_shape: (H, W).
        pitch_mm: cell side in mm.

    Returns:
        (N, 2) int64 (row, col), clipped to the grid: points on its closed outer edge, or in the
        sliver of disk beyond it when ``round(diameter / pitch)`` rounds down, go to the border
        cell. Check that points lie on the wafer (in mm) before snapping them.
    """
    xy_mm = np.asarray(xy_mm, dtype=np.float64)
    height, width = grid_shape
    col = np.floor(xy_mm[:, 0] / pitch_mm + width / 2.0).astype(np.int64)
    row = np.floor(height / 2.0 - xy_mm[:, 1] / pitch_mm).astype(np.int64)
    np.clip(col, 0, width - 1, out=col)
    np.clip(row, 0, height - 1, out=row)
    return np.stack([row, col], axis=1)


@dataclass(frozen=True, eq=False)
class WaferMap:
    """One wafer defect map: the defective cells of a square-cell grid over a round wafer.

    Build it with :meth:`from_coordinates`, which validates and merges duplicates; the plain
    constructor only normalises types (``coords`` becomes a read-only (N, 2) int64 array).

    Attributes:
        coords: (N, 2) int64 (row, col) indices of the defective cells, unique, sorted by row then
            column.
        grid_shape: (H, W) number of cells.
        pitch_mm: cell side in mm.
        diameter_mm: wafer diameter in mm.
        label: pattern name from :data:`PATTERNS`, or None when unlabelled.
        name: identifier of the map (file stem, WM-811K lot and wafer, simulated index).
    """

    coords: np.ndarray
    grid_shape: tuple[int, int]
    pitch_mm: float
    diameter_mm: float
    label: str | None = None
    name: str = ""

    def __post_init__(self) -> None:
        coords = np.array(self.coords, dtype=np.int64, copy=True).reshape(-1, 2)
        coords.setflags(write=False)
        object.__setattr__(self, "coords", coords)
        height, width = (int(size) for size in self.grid_shape)
        if height < 1 or width < 1:
            raise ValueError(f"grid_shape must be positive, got {self.grid_shape}")
        object.__setattr__(self, "grid_shape", (height, width))
        object.__setattr__(self, "pitch_mm", float(self.pitch_mm))
        object.__setattr__(self, "diameter_mm", float(self.diameter_mm))

    @classmethod
    def from_coordinates(
        cls,
        coords: np.ndarray,
        grid_shape: tuple[int, int],
        pitch_mm: float,
        diameter_mm: float,
        label: str | None = None,
        name: str = "",
        source: str | os.PathLike[str] | None = None,
    ) -> WaferMap:
        """Validate defect cells and build a map; duplicates are merged.

        Args:
            coords: (N, 2) (row, col) cell indices, integer-valued (float arrays of whole numbers
                are accepted).
            grid_shape: (H, W) cells.
            pitch_mm: cell side in mm, > 0.
            diameter_mm: wafer diameter in mm, > 0.
            label: a pattern name (any :func:`normalize_label` spelling) or None.
            name: identifier of the map.
            source: the file the map came from, for error messages (default: ``name``).

        Raises:
            InputError: NaN or non-integer coordinates, cells outside the grid or the wafer disk,
                non-positive pitch or diameter, unknown label.
        """
        where = source if source is not None else (name or "wafer map")
        if not (np.isfinite(pitch_mm) and pitch_mm > 0):
            raise InputError(where, f"pitch_mm must be a positive number, got {pitch_mm}")
        if not (np.isfinite(diameter_mm) and diameter_mm > 0):
            raise InputError(where, f"diameter_mm must be a positive number, got {diameter_mm}")
        label = normalize_label(label, where)
        array = np.asarray(coords)
        if array.size == 0:
            array = np.zeros((0, 2), dtype=np.int64)
        if array.ndim != 2 or array.shape[1] != 2:
            raise InputError(where, f"coordinates must be (N, 2) (row, col), got {array.shape}")
        if not np.issubdtype(array.dtype, np.integer):
            array = array.astype(np.float64)
            nan = ~np.isfinite(array).all(axis=1)
            if nan.any():
                raise InputError(
                    where, f"{int(nan.sum())} defects have NaN or infinite coordinates"
                )
            if not np.array_equal(array, np.round(array)):
                raise InputError(where, "grid coordinates must be whole numbers")
        array = array.astype(np.int64)
        height, width = (int(size) for size in grid_shape)
        rows, cols = array[:, 0], array[:, 1]
        radius = _radius_cells(pitch_mm, diameter_mm)
        outside = ~in_disk(rows, cols, (height, width), radius)
        outside |= (rows < 0) | (rows >= height) | (cols < 0) | (cols >= width)
        if outside.any():
            raise InputError(
                where,
                f"{int(outside.sum())} of {len(array)} defects lie outside the wafer "
                f"(radius {diameter_mm / 2:g} mm = {radius:g} cells)",
            )
        flat = np.sort(rows * width + cols)  # sort + neighbour test: faster than np.unique
        flat = flat[np.concatenate([[True], flat[1:] != flat[:-1]])] if len(flat) else flat
        merged = np.stack([flat // width, flat % width], axis=1)
        return cls(merged, (height, width), pitch_mm, diameter_mm, label, name)

    @property
    def n_defects(self) -> int:
        """Number of defective cells."""
        return len(self.coords)

    @property
    def radius_cells(self) -> float:
        """Wafer radius in cells."""
        return _radius_cells(self.pitch_mm, self.diameter_mm)

    def xy_mm(self) -> np.ndarray:
        """(N, 2) float64 (x, y) of the defective cell centres in mm, origin at the wafer centre."""
        return grid_to_mm(self.coords, self.grid_shape, self.pitch_mm)

    def radii(self) -> np.ndarray:
        """(N,) float64 distance of each defective cell centre from the wafer centre, in radii."""
        xy = self.xy_mm()
        return np.hypot(xy[:, 0], xy[:, 1]) / (self.diameter_mm / 2.0)

    def to_dense(self) -> np.ndarray:
        """(H, W) bool image, True at defective cells (16 MiB at 4096 x 4096)."""
        dense = np.zeros(self.grid_shape, dtype=bool)
        dense[self.coords[:, 0], self.coords[:, 1]] = True
        return dense

    def wafer_mask(self) -> np.ndarray:
        """(H, W) bool image, True at the cells that touch the wafer disk (see :func:`in_disk`)."""
        height, width = self.grid_shape
        rows = np.arange(height)[:, None]
        cols = np.arange(width)[None, :]
        return in_disk(rows, cols, self.grid_shape, self.radius_cells)

    def binned(self, size: int = 64, mode: Literal["count", "density"] = "count") -> np.ndarray:
        """A small dense image of the map, for dense CNN baselines and figures.

        The grid is centred in a square of side ``S = max(H, W)`` cells (so the wafer stays round
        on non-square WM-811K grids) and cut into ``size`` x ``size`` bins of ``S / size`` cells.

        Args:
            size: output side in bins.
            mode: ``"count"``: defective cells per bin (sums to :attr:`n_defects`);
                ``"density"``: fraction of the bin's cells that are defective, in [0, 1].

        Returns:
            (size, size) float32.
        """
        if size < 1:
            raise ValueError(f"size must be positive, got {size}")
        if mode not in ("count", "density"):
            raise ValueError(f"mode must be 'count' or 'density', got {mode!r}")
        height, width = self.grid_shape
        side = max(height, width)
        rows = self.coords[:, 0] + (side - height) / 2.0
        cols = self.coords[:, 1] + (side - width) / 2.0
        bin_rows = np.minimum((rows * size / side).astype(np.int64), size - 1)
        bin_cols = np.minimum((cols * size / side).astype(np.int64), size - 1)
        counts = np.bincount(bin_rows * size + bin_cols, minlength=size * size)
        image = counts.reshape(size, size).astype(np.float32)
        if mode == "density":
            image /= np.float32((side / size) ** 2)
            np.minimum(image, 1.0, out=image)
        return image

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WaferMap):
            return NotImplemented
        return (
            self.grid_shape == other.grid_shape
            and self.pitch_mm == other.pitch_mm
            and self.diameter_mm == other.diameter_mm
            and self.label == other.label
            and self.name == other.name
            and np.array_equal(self.coords, other.coords)
        )

    __hash__ = None  # type: ignore[assignment]  # holds an array: equal maps, no hash

    def __repr__(self) -> str:
        return (
            f"WaferMap(name={self.name!r}, label={self.label!r}, n_defects={self.n_defects}, "
            f"grid_shape={self.grid_shape}, pitch_mm={self.pitch_mm:g}, "
            f"diameter_mm={self.diameter_mm:g})"
        )
