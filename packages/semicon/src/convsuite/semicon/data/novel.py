"""Novel patterns that no simulator class draws: the held-out novelty set.

The monitor's novelty detector must flag patterns it never saw. The hold-each-pattern-out
protocol tests that with the nine known patterns; these three are novel to every monitor (the
bundled one included), drawn with the same background (:mod:`convsuite.semicon.data.simulate`):

  ============== ==================================================================================
  spiral         Archimedean spiral from near the centre, 1-2.5 turns out to 0.6-0.95 R, 0.3-1 mm
                 thick (sigma); 2k-8k defects (a spin-coating or wafer-handling trace)
  reticle        one small cluster (sigma 0.3-1.2 mm, 15-60 defects) repeated at the same place of
                 every reticle field, fields 20-33 mm x 20-33 mm (a defect on the mask)
  cluster-ring   6-14 round clusters (sigma 1-4 mm, 150-600 defects each) evenly spaced on a circle
                 of radius 0.3-0.75 R (a chuck's pins or a ring of nozzles)
  ============== ==================================================================================

Maps are unlabelled (``label`` None: not one of the known patterns) and named
``novel_<iiiii>_<pattern>``; map ``i`` depends only on ``seed`` and ``i``, as in the simulator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convsuite.semicon.data.simulate import (
    SimulationOptions,
    _background,
    _clip,
    _count,
    _polar,
)
from convsuite.semicon.data.wafer_map import WaferMap

__all__ = ["NOVEL_PATTERNS", "simulate_novel_maps"]


def _spiral(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    n = _count(rng, 2000, 8000, options.defects_scale)
    turns = rng.uniform(1.0, 2.5)
    start, end = rng.uniform(0.0, 0.15), rng.uniform(0.6, 0.95)
    t = rng.random(n)
    radius = start + (end - start) * t
    angle = rng.uniform(0, 2 * np.pi) + rng.choice([-1.0, 1.0]) * 2 * np.pi * turns * t
    thickness = rng.uniform(0.3, 1.0) / (options.diameter_mm / 2.0)
    return _polar(radius, angle) + rng.normal(0.0, thickness, (n, 2))


def _reticle(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    radius_mm = options.diameter_mm / 2.0
    field = rng.uniform(20.0, 33.0, 2) / radius_mm  # field size in wafer radii
    origin = rng.random(2) * field  # the cluster's place within each field
    steps = [np.arange(-np.ceil(1 / f) - 1, np.ceil(1 / f) + 1) for f in field]
    centres = np.stack(np.meshgrid(*steps, indexing="ij"), -1).reshape(-1, 2) * field + origin
    centres = centres[np.einsum("ij,ij->i", centres, centres) < 0.97**2]
    sigma = rng.uniform(0.3, 1.2) / radius_mm
    size = max(1, int(rng.integers(15, 61) * options.defects_scale))
    return np.concatenate([c + rng.normal(0.0, sigma, (size, 2)) for c in centres])


def _cluster_ring(rng: np.random.Generator, options: SimulationOptions) -> np.ndarray:
    radius_mm = options.diameter_mm / 2.0
    k = int(rng.integers(6, 15))
    ring = rng.uniform(0.3, 0.75)
    angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(k) / k
    centres = _polar(np.full(k, ring), angles)
    sigma = rng.uniform(1.0, 4.0) / radius_mm
    parts = [
        c + rng.normal(0.0, sigma, (_count(rng, 150, 600, options.defects_scale), 2))
        for c in centres
    ]
    return np.concatenate(parts)


_SAMPLERS = {"spiral": _spiral, "reticle": _reticle, "cluster-ring": _cluster_ring}
NOVEL_PATTERNS = tuple(_SAMPLERS)
"""The novel pattern names (see the module docstring)."""


def simulate_novel_maps(
    n: int,
    seed: int,
    options: SimulationOptions | None = None,
    patterns: Sequence[str] = NOVEL_PATTERNS,
) -> list[WaferMap]:
    """``n`` unlabelled maps, map ``i`` showing ``patterns[i % len(patterns)]`` over a background.

    ``options`` as in :func:`~convsuite.semicon.data.simulate.simulate_wafer_maps` (default: the
    4096 grid).

    Raises:
        ValueError: an unknown novel pattern.
    """
    unknown = sorted(set(patterns) - set(_SAMPLERS))
    if unknown or not patterns:
        raise ValueError(f"novel patterns must be among {NOVEL_PATTERNS}, got {unknown}")
    options = options or SimulationOptions()
    maps = []
    half = options.grid / 2.0
    for index in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        pattern = patterns[index % len(patterns)]
        points = np.concatenate(
            [_clip(_background(rng, options)), _clip(_SAMPLERS[pattern](rng, options))]
        )
        cols = np.minimum(np.floor(points[:, 0] * half + half), options.grid - 1).astype(np.int64)
        rows = np.minimum(np.floor(half - points[:, 1] * half), options.grid - 1).astype(np.int64)
        maps.append(
            WaferMap.from_coordinates(
                np.stack([rows, cols], axis=1),
                (options.grid, options.grid),
                options.pitch_mm,
                options.diameter_mm,
                name=f"novel_{index:05d}_{pattern}",
            )
        )
    return maps
