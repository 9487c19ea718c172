"""Seeded simulator of full-resolution wafer defect maps, one defect pattern per wafer.

Model. Defects are points on a wafer of radius R, drawn in units of R (the unit disk, y up) and
snapped to the cells of a ``grid`` x ``grid`` map at the end; several defects in one cell merge into
one defective cell. Defect counts are physical (defects per wafer), so they do not change with the
grid; on a coarse grid more of them merge. Every map has

* a background of random defects: Poisson, ``background_density`` defects per cm^2 on average times
  a per-wafer factor in [0.4, 2.5] (about 300 to 1,800 on a 300 mm wafer by default), a share of
  them (0-25%) crowded towards the rim, plus a few micro-clusters of 5-40 defects (particles) about
  0.2-1 mm across;
* one pattern (:data:`PATTERNS`), its parameters drawn for each wafer:

  ========== ===================================================================================
  center     Gaussian blob near the centre, sigma 0.05-0.13 R, mildly elliptical; 3k-15k defects
  donut      annulus of mean radius 0.38-0.60 R, radial sigma 0.03-0.07 R, uneven around; 3k-15k
  edge-ring  full ring at the rim, radial depth sigma 0.008-0.03 R; 3k-20k
  edge-loc   arc of the edge zone, 24-100 degrees long, 0.02-0.07 R deep, crescent-shaped; 1.5k-10k
  loc        elliptical blob off centre (at 0.3-0.8 R), sigma 0.03-0.09 R, aspect 1-2.2; 1.5k-10k
  scratch    quadratic Bezier curve 0.35-1.3 R long (52-195 mm), bowed by up to 15% of its chord,
             0.04-0.15 mm thick (sigma), 8-30 defects per mm, broken by gaps; 0.3k-6k
  random     uniform over the wafer; 6k-20k
  near-full  uniform over the wafer with one sparser region (a disk of 0.15-0.4 R, density 5-50%);
             30k-90k
  none       background only
  ========== ===================================================================================

  ``defects_scale`` multiplies every count (background and pattern). Patterns are clipped to the
  disk. With the defaults, maps hold about 2k-20k defective cells at 4096 (near-full up to ~90k),
  and one 4096 map takes 1-5 ms (15-30 ms for near-full) on one CPU core.

Determinism: :func:`simulate_wafer_maps` gives map ``i`` the generator of
``np.random.SeedSequence(seed).spawn(...)[i]``, so map ``i`` is the same whatever ``n`` is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsuite.semicon.data.readers import write_wafer_csv
from convsuite.semicon.data.wafer_map import PATTERNS, WaferMap, normalize_label

__all__ = [
    "WM811K_PREVALENCE",
    "SimulationOptions",
    "iter_simulated",
    "simulate_wafer_map",
    "simulate_wafer_maps",
    "write_simulated",
]

WM811K_PREVALENCE = {
    "none": 147431,
    "edge-ring": 9680,
    "edge-loc": 5189,
    "center": 4294,
    "loc": 3593,
    "scratch": 1193,
    "random": 866,
    "donut": 555,
    "near-full": 149,
}
"""Labelled WM-811K wafers per pattern: the class frequencies of an unbalanced production stream."""


@dataclass(frozen=True)
class SimulationOptions:
    """What to simulate.

    Attributes:
        grid: side of the square map in cells (pitch = ``diameter_mm / grid``).
        diameter_mm: wafer diameter in mm.
        background_density: mean random background defects per cm^2 of wafer (before the per-wafer
            factor in [0.4, 2.5]).
        defects_scale: multiplies every defect count, background and pattern alike (e.g. 0.1 for
            small test grids, where dense patterns would fill every cell).
    """

    grid: int = 4096
    diameter_mm: float = 300.0
    background_density: float = 1.0
    defects_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.grid < 8:
            raise ValueError(f"grid must be at least 8 cells, got {self.grid}")
        if not self.diameter_mm > 0:
            raise ValueError(f"diameter_mm must be positive, got {self.diameter_mm}")
        if self.background_density < 0 or self.defects_scale < 0:
            raise ValueError("background_density and defects_scale must be >= 0")

    @property
    def pitch_mm(self) -> float:
        """Cell side in mm."""
        return self.diameter_mm / self.grid


def simulate_wafer_map(
    rng: np.random.Generator,
    pattern: str,
    options: SimulationOptions = SimulationOptions(),
    name: str | None = None,
) -> WaferMap:
    """Simulate one wafer defect map with the given pattern.

    Args:
        rng: the generator; the map depends on it alone (and on the arguments).
        pattern: one of :data:`PATTERNS` (WM-811K spellings accepted).
        options: grid, wafer and defect-count settings.
        name: the map's name (default ``simulated_<pattern>``).

    Returns:
        A :class:`WaferMap` on a ``grid`` x ``grid`` grid, labelled ``pattern``.

    Raises:
        InputError: unknown pattern.
    """
    label = normalize_label(pattern, "pattern")
    if label is None:
        raise ValueError("pattern must be a pattern name, not None")
    background, pattern_points = _sample_parts(rng, label, options)
    points = np.concatenate([background, pattern_points])
    half = options.grid / 2.0
    cols = np.minimum(np.floor(points[:, 0] * half + half), options.grid - 1).astype(np.int64)
    rows = np.minimum(np.floor(half - points[:, 1] * half), options.grid - 1).astype(np.int64)
    return WaferMap.from_coordinates(
        np.stack([rows, cols], axis=1),
        (options.grid, options.grid),
        options.pitch_mm,
        options.diameter_mm,
        label=label,
        name=name if name is not None else f"simulated_{label}",
    )


def iter_simulated(
    n: int,
    seed: int,
    options: SimulationOptions = SimulationOptions(),
    patterns: Sequence[str] = PATTERNS,
    balanced: bool = True,
    start: int = 0,
) -> Iterator[WaferMap]:
    """Simulate maps ``start`` to ``start + n - 1`` of a series lazily, one at a time.

    Map ``i`` is the same as in ``simulate_wafer_maps(m, seed, ...)`` for any ``m > i``, so a series
    can be split across workers by ``start``. Arguments as in :func:`simulate_wafer_maps`.

    Yields:
        The maps in order, named ``wafer_<iiiii>_<pattern>``.
    """
    labels = [normalize_label(pattern, "patterns") for pattern in patterns]
    if not labels or any(label is None for label in labels):
        raise ValueError("patterns must be a non-empty sequence of pattern names")
    weights = np.array([WM811K_PREVALENCE[label] for label in labels], dtype=np.float64)
    weights /= weights.sum()
    for index in range(start, start + n):
        # The index-th child of SeedSequence(seed).spawn(...), built directly.
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        if balanced:
            label = labels[index % len(labels)]
        else:
            label = labels[int(rng.choice(len(labels), p=weights))]
        yield simulate_wafer_map(rng, label, options, name=f"wafer_{index:05d}_{label}")


def simulate_wafer_maps(
    n: int,
    seed: int,
    options: SimulationOptions = SimulationOptions(),
    patterns: Sequence[str] = PATTERNS,
    balanced: bool = True,
) -> list[WaferMap]:
    """Simulate a series of ``n`` maps; same seed, same maps, and map ``i`` does not depend on ``n``.

    Args:
        n: number of maps.
        seed: seed of the series; map ``i`` uses ``np.random.SeedSequence(seed).spawn(n)[i]``.
        options: grid, wafer and defect-count settings.
        patterns: the patterns to draw from.
        balanced: True: map ``i`` has ``patterns[i % len(patterns)]`` (equal classes); False: the
            pattern is drawn with the WM-811K labelled frequencies (:data:`WM811K_PREVALENCE`,
            85% ``none``), renormalised over ``patterns``.

    Returns:
        The maps, named ``wafer_<iiiii>_<pattern>``.
    """
    return list(iter_simulated(n, seed, options, patterns, balanced))


def write_simulated(out_dir: str | os.PathLike[str], maps: Sequence[WaferMap]) -> list[Path]:
    """Write each map as ``<out_dir>/<name>.csv`` (the defect-list format), atomically.

    Returns:
        The written paths, in the order of ``maps``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [write_wafer_csv(out_dir / f"{wafer_map.name}.csv", wafer_map) for wafer_map in maps]


# --- point processes in the unit disk ------------------------------------------------------------


def _sample_parts(
    rng: np.random.Generator, pattern: str, options: SimulationOptions
) -> tuple[np.ndarray, np.ndarray]:
    """(background, pattern) defects as (N, 2) float64 (u, v) in wafer radii, inside the disk."""
    pattern_points = _PATTERN_SAMPLERS[pattern](rng, options)
    background = _background(rng, options)
    return _clip(background), _clip(pattern_points)


def _clip(points: np.ndarray) -> np.ndarray:
    return points[np.einsum("ij,ij->i", points, points) <= 1.0]


def _count(rng: np.random.Generator, low: float, high: float, scale: float) -> int:
    """A log-uniform count in [low, high] times ``scale``, Poisson-rounded."""
    mean = np.exp(rng.uniform(np.log(low), np.log(high))) * scale
    return int(rng.poisson(mean))


def _polar(radius: np.ndarray, angle: np.ndarray) -> np.ndarray:
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def _uniform_disk(rng: np.random.Generator, n: int) -> np.ndarray:
    return _polar(np.sqrt(rng.random(n)), rng.uniform(0.0, 2.0 * np.pi, n))


def _rim(rng: np.random.Generator, n: int, depth: float | np.ndarray) -> np.ndarray:
    """Radii 1 - |N(0, depth)|: defects crowded at the wafer edge."""
    return 1.0 - np.abs(rng.normal(0.0, 1.0, n)) * depth


def _uneven_angles(rng: np.random.Generator, n: int, uniform_share: float) -> np.ndarray:
    """Angles: a share uniform, the rest von Mises about a random direction (uneven rings)."""
    mean = rng.uniform(-np.pi, np.pi)
    kappa = rng.uniform(0.5, 2.0)
    return np.where(
        rng.random(n) < uniform_share,
        rng.uniform(-np.pi, np.pi, n),
        rng.vonmises(mean, kappa, n),
    )


def _gaussian_blob(
    rng: np.random.Generator, n: int, centre: np.ndarray, sigma: float, aspect: float
) -> np.ndarray:
    """An elliptical Gaussian blob, axes ``sigma * aspect`` and ``sigma / aspect``, random tilt."""
    angle = rng.uniform(0.0, np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    local = rng.normal(0.0, 1.0, (n, 2)) * np.array([sigma * aspect, sigma / aspect])
    return centre + local @ rotation.T


def _background(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    area_cm2 = np.pi * (options.diameter_mm / 20.0) ** 2
    factor = np.exp(rng.uniform(np.log(0.4), np.log(2.5)))
    total = int(rng.poisson(options.background_density * area_cm2 * factor * options.defects_scale))
    rim_share = rng.uniform(0.0, 0.25)
    n_rim = int(rng.binomial(total, rim_share))
    uniform = _uniform_disk(rng, total - n_rim)
    rim = _polar(_rim(rng, n_rim, rng.uniform(0.03, 0.08)), rng.uniform(0, 2 * np.pi, n_rim))
    radius_mm = options.diameter_mm / 2.0
    clusters = [uniform, rim]
    for _ in range(int(rng.poisson(2.0))):
        size = int(5 + rng.poisson(15.0 * options.defects_scale))
        centre = _uniform_disk(rng, 1)[0]
        clusters.append(centre + rng.normal(0.0, rng.uniform(0.1, 0.5) / radius_mm, (size, 2)))
    return np.concatenate(clusters)


def _center(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    n = _count(rng, 3000, 15000, options.defects_scale)
    centre = rng.normal(0.0, 0.03, 2)
    return _gaussian_blob(rng, n, centre, rng.uniform(0.05, 0.13), rng.uniform(1.0, 1.25))


def _donut(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    n = _count(rng, 3000, 15000, options.defects_scale)
    radius = rng.normal(rng.uniform(0.38, 0.60), rng.uniform(0.03, 0.07), n)
    return _polar(radius, _uneven_angles(rng, n, rng.uniform(0.5, 1.0)))


def _edge_ring(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    n = _count(rng, 3000, 20000, options.defects_scale)
    depth = rng.uniform(0.008, 0.03)
    return _polar(_rim(rng, n, depth), _uneven_angles(rng, n, rng.uniform(0.6, 1.0)))


def _edge_loc(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    n = _count(rng, 1500, 10000, options.defects_scale)
    centre = rng.uniform(-np.pi, np.pi)
    half_arc = np.deg2rad(rng.uniform(12.0, 50.0))
    offset = 2.0 * rng.beta(2.0, 2.0, n) - 1.0  # in [-1, 1], thinning towards the arc's ends
    depth = rng.uniform(0.02, 0.07) * (0.2 + 0.8 * np.sqrt(1.0 - offset**2))
    return _polar(_rim(rng, n, depth), centre + half_arc * offset)


def _loc(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    n = _count(rng, 1500, 10000, options.defects_scale)
    centre = _polar(np.array([rng.uniform(0.3, 0.8)]), np.array([rng.uniform(0, 2 * np.pi)]))[0]
    return _gaussian_blob(rng, n, centre, rng.uniform(0.03, 0.09), np.sqrt(rng.uniform(1.0, 2.2)))


def _scratch_curve(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control points (P0, P1, P2) of a quadratic Bezier scratch, in wafer radii."""
    middle = _uniform_disk(rng, 1)[0] * 0.6
    angle = rng.uniform(0.0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    # Distances from the middle along +-direction to a circle of 0.97 R: the chord stays inside.
    along = middle @ direction
    reach = np.sqrt(along**2 - middle @ middle + 0.97**2)
    half = 0.5 * rng.uniform(0.35, 1.3)
    forward, backward = min(half, reach - along), min(half, reach + along)
    start, end = middle - backward * direction, middle + forward * direction
    chord = forward + backward
    # A control point beyond the chord's middle bows the curve by half its offset (the sagitta).
    bow = rng.uniform(-0.15, 0.15) * chord * 2.0
    shift = rng.uniform(-0.05, 0.05) * chord
    control = 0.5 * (start + end) + bow * normal + shift * direction
    return start, control, end


def _scratch(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    p0, p1, p2 = _scratch_curve(rng)
    # Gaps: cut the curve into pieces and keep each with probability 0.75 (at least two).
    n_pieces = int(rng.integers(3, 13))
    edges = np.concatenate([[0.0], np.cumsum(rng.dirichlet(np.full(n_pieces, 2.0)))])
    edges[-1] = 1.0
    keep = rng.random(n_pieces) < 0.75
    keep[rng.choice(n_pieces, 2, replace=False)] = True
    radius_mm = options.diameter_mm / 2.0
    length_mm = radius_mm * (np.linalg.norm(p1 - p0) + np.linalg.norm(p2 - p1))  # control polygon
    kept = float(np.sum(np.diff(edges)[keep]))
    n = int(rng.poisson(rng.uniform(8.0, 30.0) * length_mm * kept * options.defects_scale))
    # t uniform over the kept pieces: pick a piece by its length, then a place in it.
    lengths = np.diff(edges) * keep
    piece = rng.choice(n_pieces, n, p=lengths / lengths.sum())
    t = edges[piece] + rng.random(n) * (edges[piece + 1] - edges[piece])
    t = t[:, None]
    points = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    tangent = 2 * (1 - t) * (p1 - p0) + 2 * t * (p2 - p1)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    thickness = rng.uniform(0.04, 0.15) / radius_mm  # sigma across the scratch, mm -> radii
    return points + normal * rng.normal(0.0, thickness, (n, 1))


def _random(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    return _uniform_disk(rng, _count(rng, 6000, 20000, options.defects_scale))


def _near_full(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    n = _count(rng, 30000, 90000, options.defects_scale)
    points = _uniform_disk(rng, n)
    hole_centre = _uniform_disk(rng, 1)[0]
    hole_radius = rng.uniform(0.15, 0.4)
    in_hole = np.sum((points - hole_centre) ** 2, axis=1) < hole_radius**2
    kept = ~in_hole | (rng.random(n) < rng.uniform(0.05, 0.5))
    return points[kept]


def _none(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    return np.zeros((0, 2))


_PATTERN_SAMPLERS = {
    "center": _center,
    "donut": _donut,
    "edge-ring": _edge_ring,
    "edge-loc": _edge_loc,
    "loc": _loc,
    "scratch": _scratch,
    "random": _random,
    "near-full": _near_full,
    "none": _none,
}
