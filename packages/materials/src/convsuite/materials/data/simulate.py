"""Seeded simulator of EELS spectrum images of an Fe/Mn oxide, built on exspy, with anomalies.

Each pixel's spectrum (counts per channel) is

    t * [ B (E / E_ref)^-r                                   power-law background
        + c_Fe (jump * edge_Fe(E - dE) + white lines L3, L2)  Fe L2,3: hydrogenic edge + lines
        + c_Mn (edge_Mn(E) + white lines)                    Mn L2,3
        + c_O  (edge_O(E) + pre-peak and main peak) ]         O K

with Poisson noise. The continua are exspy's ``EELSCLEdge`` with ``GOS="hydrogenic"`` (the default
tabulated GOS is a download), evaluated once on a fine grid and shifted per pixel by interpolation;
the white lines are Lorentzians (FWHM ~1.5-2 eV) as in Fe2+/Fe3+ oxides: the Fe3+ L3 line sits
~1.5 eV above the Fe2+ one, and the L3/L2 ratio differs between valences.

Normal variation that a detector must NOT flag: two phases (the second with more Fe3+, another
L3/L2 ratio, a higher onset and more Mn and O), mixed valence varying smoothly across the map, a
thickness wedge with smooth thickness variation (and a thickness-dependent background slope), and
an energy drift of a few tenths of an eV along the scan (row by row, the way a scan acquires).

Anomalies (:class:`AnomalySpec`): Fe L edge shifts (whole edge up/down, or the L3 line only) of
0.5-11 eV, white-line broadening, white-line intensity changes; as single pixels or small
clusters at a chosen count. The ground truth is in the signal's metadata: ``Anomalies.mask``
(bool, y x), ``Anomalies.kind`` (int8 code per pixel, names in ``Anomalies.kinds``; 0 normal) and
``Anomalies.magnitude`` (float32 per pixel: eV for shifts and broadening, the relative intensity
change for ``intensity``); ``Simulation.phase`` holds the phase map.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.ndimage import gaussian_filter

from convsuite.core_ops.errors import InputError
from convsuite.materials.data.io import EnergyAxis

__all__ = ["ANOMALY_KINDS", "DEFAULT_ENERGY", "AnomalySpec", "FE_L3_EV", "simulate_cube"]

ANOMALY_KINDS = ("normal", "shift", "l3_shift", "broadening", "intensity")
FE_L3_EV = 708.0  # Fe2+ L3 white line; the Fe3+ one is at +1.5 eV
FE_L2_EV = 721.0
_FE3_OFFSET_EV = 1.5
_GRID_EV = 0.02  # fine grid of the edge templates
DEFAULT_ENERGY = EnergyAxis(500.0, 0.25, 1120)
"""500-780 eV at 0.25 eV per channel: O K, Mn L2,3 and Fe L2,3."""


@dataclass(frozen=True)
class AnomalySpec:
    """One family of anomalies injected into the map.

    Attributes:
        kind: ``shift`` (whole Fe L2,3 edge), ``l3_shift`` (the L3 white line only),
            ``broadening`` (white-line FWHM grows by ``magnitude`` eV) or ``intensity``
            (white-line intensity times 1 +- ``magnitude``).
        magnitude: eV for shifts and broadening; relative change for intensity.
        count: anomalous pixels of this family.
        cluster: pixels per cluster (1: single pixels; larger: compact blobs).
        direction: ``up``, ``down`` or ``both`` (each anomaly picks a sign at random).
    """

    kind: Literal["shift", "l3_shift", "broadening", "intensity"] = "shift"
    magnitude: float = 2.0
    count: int = 500
    cluster: int = 1
    direction: Literal["up", "down", "both"] = "both"

    def __post_init__(self) -> None:
        if self.kind not in ANOMALY_KINDS[1:]:
            raise InputError("anomaly", f"kind must be one of {ANOMALY_KINDS[1:]}, got {self.kind}")
        if self.direction not in ("up", "down", "both"):
            raise InputError("anomaly", f"direction must be up, down or both: {self.direction}")
        if self.count < 0 or self.cluster < 1 or self.magnitude < 0:
            raise InputError("anomaly", "count >= 0, cluster >= 1 and magnitude >= 0 required")


@functools.lru_cache(maxsize=8)
def _edge_template(name: str, start: float, stop: float) -> tuple[np.ndarray, np.ndarray]:
    """(grid, values) of exspy's hydrogenic edge ``name`` on a fine grid, unit continuum step.

    The continuum is normalized to 1 at 30 eV above its onset; 200 keV, 20 mrad collection.
    """
    import logging

    logging.getLogger("hyperspy").setLevel(max(logging.getLogger("hyperspy").level, 40))
    from exspy.components import EELSCLEdge

    edge = EELSCLEdge(name, GOS="hydrogenic")
    # 200 keV, 1 mrad convergence, 20 mrad collection; this also integrates the GOS over q.
    edge.set_microscope_parameters(E0=200.0, alpha=1.0, beta=20.0, energy_scale=_GRID_EV)
    edge.intensity.value = 1.0
    grid = np.arange(start, stop, _GRID_EV)
    values = np.asarray(edge.function(grid), dtype=np.float64)
    reference = float(edge.function(np.array([edge.onset_energy.value + 30.0]))[0])
    return grid, values / reference


def _shifted(template: tuple[np.ndarray, np.ndarray], energy: np.ndarray, shift: np.ndarray):
    """(P, n) template evaluated at ``energy - shift[p]`` by linear interpolation."""
    grid, values = template
    position = (energy[None, :] - shift[:, None] - grid[0]) / _GRID_EV
    position = np.clip(position, 0, grid.size - 1.000001)
    low = position.astype(np.int64)
    weight = position - low
    return values[low] * (1 - weight) + values[low + 1] * weight


def _lorentz(energy: np.ndarray, center: np.ndarray, fwhm: np.ndarray | float) -> np.ndarray:
    """(P, n) unit-height Lorentzians at ``center[p]`` (eV) with ``fwhm`` (eV)."""
    half = np.broadcast_to(np.asarray(fwhm, dtype=np.float64), center.shape)[:, None] / 2
    return half**2 / ((energy[None, :] - center[:, None]) ** 2 + half**2)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """A smooth random field, zero mean, unit standard deviation."""
    field = gaussian_filter(rng.standard_normal(shape), sigma, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-12)


def _place(
    rng: np.random.Generator, free: np.ndarray, count: int, cluster: int
) -> list[np.ndarray]:
    """Flat indices of ``count`` pixels among ``free`` (y x bool, updated), grouped in clusters."""
    height, width = free.shape
    groups: list[np.ndarray] = []
    placed = 0
    attempts = 0
    while placed < count:
        attempts += 1
        if attempts > 50 * count + 1000:
            raise InputError("anomaly", f"cannot place {count} anomalous pixels on the map")
        seed_index = rng.integers(height * width)
        if not free.flat[seed_index]:
            continue
        members = [int(seed_index)]
        size = min(cluster, count - placed)
        while len(members) < size:  # grow a compact blob through free 4-neighbours
            y, x = divmod(members[int(rng.integers(len(members)))], width)
            dy, dx = ((0, 1), (1, 0), (0, -1), (-1, 0))[int(rng.integers(4))]
            ny, nx = y + dy, x + dx
            if (
                0 <= ny < height
                and 0 <= nx < width
                and free[ny, nx]
                and ny * width + nx not in members
            ):
                members.append(ny * width + nx)
            elif rng.random() < 0.01:
                break
        group = np.array(members)
        free.flat[group] = False
        if cluster == 1:  # keep single pixels single: no anomalous neighbour
            for index in group:
                y, x = divmod(int(index), width)
                free[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2] = False
        groups.append(group)
        placed += group.size
    return groups


def simulate_cube(
    shape: tuple[int, int] = (64, 64),
    seed: int = 0,
    anomalies: Sequence[AnomalySpec] = (AnomalySpec(),),
    energy: EnergyAxis = DEFAULT_ENERGY,
    second_phase: bool = True,
    drift_ev: float = 0.3,
    thickness_wedge: bool = True,
    mixed_valence: bool = True,
    dose: float = 3000.0,
) -> Any:
    """A simulated EELS spectrum image (``EELSSpectrum``, float32 counts) with ground truth.

    Args:
        shape: (y, x) pixels.
        seed: the random seed; same seed, same cube.
        anomalies: the anomaly families to inject (none: a defect-free "bulk" cube).
        energy: the energy-loss axis (eV); it must cover the Fe L2,3 edge.
        second_phase: a second phase region (more Fe3+, other L3/L2 ratio, more Mn and O).
        drift_ev: energy drift across the whole scan, eV (0 for none).
        thickness_wedge: thickness rising from 0.6 to 1.4 (relative) along x.
        mixed_valence: Fe2+/Fe3+ fraction varying smoothly across the map.
        dose: counts per channel of the background at 700 eV at unit thickness.

    Returns:
        ``EELSSpectrum`` (y, x | energy) with metadata ``Anomalies.*`` and ``Simulation.*``.
    """
    import exspy

    height, width = shape
    if height < 4 or width < 4:
        raise InputError("shape", f"a simulated map needs at least 4 x 4 pixels, got {shape}")
    if energy.offset > 690 or energy.stop < 740:
        raise InputError("energy", "the energy axis must cover 690-740 eV (Fe L2,3)")
    rng = np.random.default_rng(seed)
    n_pixels = height * width
    e = energy.values
    yy, xx = np.mgrid[0:height, 0:width]

    # Normal variation.
    thickness = 1.0 + 0.08 * _smooth_field(rng, shape, max(shape) / 6)
    if thickness_wedge:
        thickness = thickness * (0.6 + 0.8 * xx / max(width - 1, 1))
    if second_phase:
        field = _smooth_field(rng, shape, max(shape) / 5)
        phase = (field > np.quantile(field, 0.7)).astype(np.int8)
    else:
        phase = np.zeros(shape, np.int8)
    fe3 = np.where(phase == 1, 0.8, 0.25)
    if mixed_valence:
        fe3 = np.clip(fe3 + 0.12 * _smooth_field(rng, shape, max(shape) / 4), 0, 1)
    drift = drift_ev * (yy * width + xx) / max(n_pixels - 1, 1)
    onset = np.where(phase == 1, 0.6, 0.0) + drift  # eV: edge onset and white lines move together
    fe_amount = np.where(phase == 1, 0.9, 1.0) * (1 + 0.03 * rng.standard_normal(shape))
    mn_amount = np.where(phase == 1, 0.6, 0.25)
    o_amount = np.where(phase == 1, 1.3, 1.0)
    l2_ratio = np.where(phase == 1, 0.22, 0.3)  # L2 / L3 white-line heights
    slope = 3.0 + 0.25 * (thickness - 1.0)

    # Anomalies.
    kind = np.zeros(shape, np.int8)
    magnitude = np.zeros(shape, np.float32)
    edge_shift = np.zeros(shape)
    l3_shift = np.zeros(shape)
    width_add = np.zeros(shape)
    line_gain = np.ones(shape)
    free = np.ones(shape, bool)
    for spec in anomalies:
        for group in _place(rng, free, spec.count, spec.cluster):
            sign = {"up": 1.0, "down": -1.0}.get(spec.direction, float(rng.choice([-1.0, 1.0])))
            kind.flat[group] = ANOMALY_KINDS.index(spec.kind)
            magnitude.flat[group] = spec.magnitude
            if spec.kind == "shift":
                edge_shift.flat[group] = sign * spec.magnitude
            elif spec.kind == "l3_shift":
                l3_shift.flat[group] = sign * spec.magnitude
            elif spec.kind == "broadening":
                width_add.flat[group] = spec.magnitude
            else:
                line_gain.flat[group] = max(0.0, 1.0 + sign * spec.magnitude)

    # Spectra, (P, n) at a time.
    flat = {name: np.ravel(value) for name, value in locals().items() if _is_map(value, shape)}
    fe_shift = flat["onset"] + flat["edge_shift"]
    fe_edge = _shifted(_edge_template("Fe_L3", 600.0, 900.0), e, fe_shift)
    mn_edge = _shifted(_edge_template("Mn_L3", 560.0, 900.0), e, flat["drift"])
    o_edge = _shifted(_edge_template("O_K", 480.0, 900.0), e, flat["drift"])
    fwhm3 = 1.6 + flat["width_add"]
    fwhm2 = 2.2 + flat["width_add"]
    fe2, fe3v = 1.0 - flat["fe3"], flat["fe3"]
    l3 = fe_shift + flat["l3_shift"] + FE_L3_EV
    lines = flat["line_gain"][:, None] * (
        fe2[:, None] * _lorentz(e, l3, fwhm3)
        + fe3v[:, None] * _lorentz(e, l3 + _FE3_OFFSET_EV, fwhm3)
        + flat["l2_ratio"][:, None]
        * (
            fe2[:, None] * _lorentz(e, fe_shift + FE_L2_EV, fwhm2)
            + fe3v[:, None] * _lorentz(e, fe_shift + FE_L2_EV + _FE3_OFFSET_EV, fwhm2)
        )
    )
    fe = flat["fe_amount"][:, None] * (0.5 * fe_edge + 2.2 * lines)
    mn = flat["mn_amount"][:, None] * (
        0.4 * mn_edge
        + 1.2 * _lorentz(e, 640.0 + flat["drift"], 1.8)
        + 0.5 * _lorentz(e, 651.0 + flat["drift"], 2.2)
    )
    o = flat["o_amount"][:, None] * (
        0.6 * o_edge
        + 0.5 * _lorentz(e, 531.0 + flat["drift"], 1.5)
        + 0.4 * _lorentz(e, 540.0 + flat["drift"], 4.0)
    )
    background = (e[None, :] / 700.0) ** (-flat["slope"][:, None])
    expected = dose * flat["thickness"][:, None] * (background + fe + mn + o)
    counts = rng.poisson(expected).astype(np.float32).reshape(height, width, e.size)

    signal = exspy.signals.EELSSpectrum(counts)
    axes = signal.axes_manager
    for axis, name in zip(axes.navigation_axes, ("x", "y"), strict=True):
        axis.name, axis.units, axis.scale = name, "nm", 0.5
    axis = axes.signal_axes[0]
    axis.name, axis.units, axis.offset, axis.scale = (
        "Energy loss",
        "eV",
        energy.offset,
        energy.scale,
    )
    signal.metadata.General.title = f"simulated Fe/Mn oxide, seed {seed}"
    signal.metadata.set_item("Signal.quantity", "Counts")
    signal.metadata.set_item("Acquisition_instrument.TEM.beam_energy", 200.0)
    signal.metadata.set_item("Acquisition_instrument.TEM.Detector.EELS.collection_angle", 20.0)
    signal.metadata.set_item("Anomalies.mask", kind > 0)
    signal.metadata.set_item("Anomalies.kind", kind)
    signal.metadata.set_item("Anomalies.kinds", list(ANOMALY_KINDS))
    signal.metadata.set_item("Anomalies.magnitude", magnitude)
    signal.metadata.set_item("Simulation.seed", int(seed))
    signal.metadata.set_item("Simulation.phase", phase)
    signal.metadata.set_item("Simulation.thickness", thickness.astype(np.float32))
    signal.metadata.set_item("Simulation.drift_ev", float(drift_ev))
    return signal


def _is_map(value: Any, shape: tuple[int, int]) -> bool:
    return isinstance(value, np.ndarray) and value.shape == tuple(shape)
