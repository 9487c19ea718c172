"""Decoys of a native structure: perturbations relaxed by OpenMM restrained minimization.

The errors a quality-assessment model should find are global and mid-range (Igashov et al. 2021
train on CASP server models): hinge motions of domains, register shifts of segments, displaced
loops and fragments, and coordinate noise at graded levels. Each is applied to the native's heavy
atoms, then OpenMM minimizes an energy that

- restrains every atom pair closer than 3 Å in the native within a residue or across a peptide
  bond to its native distance (bonds and angles: local geometry stays ideal, so no broken bonds),
- pushes apart every other atom pair closer than 2.7 Å (no clashes),
- and ties each atom weakly to its perturbed position (the error stays).

This is a restraint force field, not a physical one: an Amber force field needs hydrogens and
complete residues, which native files often lack. OpenMM is imported only inside :func:`relax`, so
the package imports without it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from convsuite.proteins.data.structure import Protein

__all__ = [
    "PERTURBATIONS",
    "Decoy",
    "coordinate_noise",
    "fragment_displacement",
    "hinge_motion",
    "make_decoys",
    "register_shift",
    "relax",
]

BOND_CUTOFF = 3.0  # Å: native pairs restrained to their distance (1-2 and 1-3 neighbours)
CLASH_DISTANCE = 2.7  # Å: closest approach of other atom pairs


@dataclass(frozen=True)
class Decoy:
    """A perturbed, relaxed copy of a native and what was done to it."""

    protein: Protein
    kind: str
    magnitude: float


def _rotate(points: np.ndarray, centre: np.ndarray, axis: np.ndarray, degrees: float) -> np.ndarray:
    rotation = Rotation.from_rotvec(np.radians(degrees) * axis / np.linalg.norm(axis))
    return rotation.apply(points - centre) + centre


def _segment_rows(protein: Protein, first: int, last: int) -> np.ndarray:
    """Atom rows of residues first..last (inclusive)."""
    r = protein.residue_index
    return np.flatnonzero((r >= first) & (r <= last))


def coordinate_noise(protein: Protein, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """Gaussian noise of ``sigma`` Å: half per atom, half a smooth per-residue drift."""
    n = protein.num_residues
    drift = np.cumsum(rng.normal(size=(n, 3)), axis=0)
    drift -= drift.mean(axis=0)
    drift *= sigma / max(float(np.linalg.norm(drift, axis=1).std()), 1e-6) / np.sqrt(2)
    per_atom = rng.normal(scale=sigma / np.sqrt(2), size=protein.coords.shape)
    return protein.coords + drift[protein.residue_index] + per_atom


def fragment_displacement(protein: Protein, rng: np.random.Generator, degrees: float) -> np.ndarray:
    """Crankshaft move of a 4-12-residue fragment about the axis through its end C-alphas."""
    n = protein.num_residues
    length = int(rng.integers(4, min(13, n - 1)))
    first = int(rng.integers(0, n - length))
    last = first + length - 1
    ca = protein.backbone()[:, 1]
    rows = _segment_rows(protein, first + 1, last - 1)
    coords = protein.coords.copy()
    coords[rows] = _rotate(coords[rows], ca[first], ca[last] - ca[first], degrees)
    return coords


def register_shift(protein: Protein, rng: np.random.Generator, shift: float) -> np.ndarray:
    """Residues of an 6-20-residue segment moved onto the backbone ``shift`` (+-1, 2) places on."""
    n = protein.num_residues
    step = int(round(shift)) * int(rng.choice([-1, 1]))
    length = int(rng.integers(6, min(21, n - abs(step))))
    first = int(rng.integers(max(0, -step), n - length - max(0, step) + 1))
    backbone = protein.backbone()
    coords = protein.coords.copy()
    for i in range(first, first + length):
        rows = _segment_rows(protein, i, i)
        source, target = backbone[i], backbone[i + step]
        rotation, _ = Rotation.align_vectors(target - target.mean(0), source - source.mean(0))
        coords[rows] = rotation.apply(protein.coords[rows] - source.mean(0)) + target.mean(0)
    return coords


def hinge_motion(protein: Protein, rng: np.random.Generator, degrees: float) -> np.ndarray:
    """Rigid rotation of everything after a hinge residue (25-75% along) about its C-alpha."""
    n = protein.num_residues
    hinge = int(rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4)))
    axis = rng.normal(size=3)
    rows = _segment_rows(protein, hinge + 1, n - 1)
    coords = protein.coords.copy()
    coords[rows] = _rotate(coords[rows], protein.backbone()[hinge, 1], axis, degrees)
    return coords


PERTURBATIONS: dict[str, tuple[Callable[..., np.ndarray], tuple[float, float]]] = {
    "noise": (coordinate_noise, (0.3, 4.0)),  # sigma, Å
    "fragment": (fragment_displacement, (30.0, 150.0)),  # degrees
    "register": (register_shift, (1.0, 2.0)),  # residues
    "hinge": (hinge_motion, (10.0, 60.0)),  # degrees
}


def _restrained_pairs(protein: Protein) -> tuple[np.ndarray, np.ndarray]:
    """Native atom pairs to keep at their distance, and all pairs close in the native."""
    pairs = cKDTree(protein.coords).query_pairs(BOND_CUTOFF + 0.5, output_type="ndarray")
    r = protein.residue_index
    same_chain = protein.chain[r[pairs[:, 0]]] == protein.chain[r[pairs[:, 1]]]
    local = (np.abs(r[pairs[:, 0]] - r[pairs[:, 1]]) <= 1) & same_chain
    distance = np.linalg.norm(protein.coords[pairs[:, 0]] - protein.coords[pairs[:, 1]], axis=1)
    return pairs[local & (distance < BOND_CUTOFF)], pairs[local]


def relax(
    native: Protein,
    coords: np.ndarray,
    iterations: int = 400,
    position_k: float = 200.0,
) -> np.ndarray:
    """Restrained minimization of perturbed ``coords`` (A, 3) of ``native``'s atoms (Å).

    Args:
        native: gives the local geometry to restore.
        coords: the perturbed coordinates.
        iterations: L-BFGS steps at most.
        position_k: kJ/mol/nm^2 of the tie to the perturbed positions.

    Returns:
        (A, 3) relaxed coordinates, Å.
    """
    import openmm
    from openmm import unit

    bonds, excluded = _restrained_pairs(native)
    system = openmm.System()
    for _ in range(len(coords)):
        system.addParticle(12.0)
    bond_force = openmm.HarmonicBondForce()
    lengths = np.linalg.norm(native.coords[bonds[:, 0]] - native.coords[bonds[:, 1]], axis=1)
    for (i, j), length in zip(bonds.tolist(), (lengths / 10.0).tolist(), strict=True):
        bond_force.addBond(i, j, length, 2.0e5)
    system.addForce(bond_force)
    clash = openmm.CustomNonbondedForce("k_clash*step(r0-r)*(r0-r)^2")
    clash.addGlobalParameter("k_clash", 5.0e4)
    clash.addGlobalParameter("r0", CLASH_DISTANCE / 10.0)
    clash.setNonbondedMethod(openmm.CustomNonbondedForce.CutoffNonPeriodic)
    clash.setCutoffDistance(CLASH_DISTANCE / 10.0 + 0.05)
    for _ in range(len(coords)):
        clash.addParticle([])
    for i, j in excluded.tolist():
        clash.addExclusion(i, j)
    system.addForce(clash)
    tie = openmm.CustomExternalForce("0.5*k_tie*((x-x0)^2+(y-y0)^2+(z-z0)^2)")
    tie.addGlobalParameter("k_tie", position_k)
    for name in ("x0", "y0", "z0"):
        tie.addPerParticleParameter(name)
    for i, position in enumerate((coords / 10.0).tolist()):
        tie.addParticle(i, position)
    system.addForce(tie)
    platform = openmm.Platform.getPlatformByName("CPU")
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), platform, {"Threads": "1"})
    context.setPositions(coords / 10.0 * unit.nanometer)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0, iterations)
    state = context.getState(getPositions=True)
    return np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.angstrom))


def make_decoys(
    native: Protein,
    count: int,
    seed: int,
    relaxed: bool = True,
) -> list[Decoy]:
    """``count`` decoys of ``native``: graded magnitudes of each perturbation, then relaxed.

    Decoy ``i`` gets perturbation ``i % 4`` (noise, fragment, register, hinge) at a magnitude
    spread evenly over its range, plus small noise (0.2 Å) so no decoy is exactly native away
    from its error; about a third of the decoys get a second, random perturbation on top.
    """
    rng = np.random.default_rng(seed)
    kinds = list(PERTURBATIONS)
    out = []
    for i in range(count):
        kind = kinds[i % len(kinds)]
        function, (low, high) = PERTURBATIONS[kind]
        level = (i // len(kinds)) / max(1, (count - 1) // len(kinds))
        magnitude = low + (high - low) * min(level, 1.0)
        coords = function(native, rng, magnitude)
        current = native.with_coords(coords)
        if rng.random() < 1 / 3:
            extra = kinds[int(rng.integers(1, len(kinds)))]
            extra_function, (extra_low, extra_high) = PERTURBATIONS[extra]
            current = current.with_coords(
                extra_function(current, rng, rng.uniform(extra_low, extra_high))
            )
            kind = f"{kind}+{extra}"
        coords = coordinate_noise(current, rng, 0.2)
        if relaxed:
            coords = relax(native, coords)
        out.append(Decoy(native.with_coords(coords, f"{native.source}#decoy{i}"), kind, magnitude))
    return out
