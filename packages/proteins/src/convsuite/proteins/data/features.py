"""The residue graph S-GCN works on: 23 input features per residue and residue-residue contacts.

Igashov et al. (2021), section 2.1: nodes are residues; features are the 20-way residue type
one-hot, the residue's volume, its buriedness and its solvent-accessible surface; edges are the
residue pairs whose atoms touch, weighted by contact area, all from Voronota's Voronoi tessellation.
Here, by default (pure Python, no binary):

- edges: residue pairs with a heavy-atom pair closer than ``CONTACT_CUTOFF`` (5 Å); the "contact
  area" of S-GCN_r is approximated by the number of such atom pairs / 10;
- volume: the tabulated residue volume (Zamyatnin 1972) times the fraction of its heavy atoms
  present, / 200 Å^3 (the paper's Voronoi cell volume also reflects packing; this one does not);
- buriedness: heavy atoms within 10 Å of the residue's C-alpha / 100 (the paper's is the Voronoi
  layer depth; both grow toward the core);
- SASA: biotite's Shrake-Rupley per-atom SASA summed per residue, relative to the residue's
  maximal ASA (Tien et al. 2013), clipped to [0, 1.5].

When the ``voronota`` binary is on PATH, :func:`voronota_contacts` gives the reference's Voronoi
contact areas instead (``contacts="voronota"``; tried by hand with Voronota 1.22, not in the tests:
CI machines lack the binary). The default stays ``"atoms"`` (the bundled weights' contacts).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree

from convsuite.core_ops.errors import InputError
from convsuite.proteins.data.structure import AMINO_ACIDS, Protein, write_structure

__all__ = [
    "CONTACT_CUTOFF",
    "NUM_FEATURES",
    "ResidueGraph",
    "build_graph",
    "residue_contacts",
    "voronota_contacts",
    "voronota_residue",
]

NUM_FEATURES = 23
CONTACT_CUTOFF = 5.0  # Å, heavy atom to heavy atom
BURIAL_RADIUS = 10.0  # Å around C-alpha
SASA_POINTS = 100  # points per atom sphere (biotite's default 1000: 10x slower, same to ~2%)

# Zamyatnin (1972) residue volumes, Å^3; heavy-atom counts of the full residues.
_VOLUME = dict(
    zip(
        AMINO_ACIDS,
        [88.6, 173.4, 114.1, 111.1, 108.5, 143.8, 138.4, 60.1, 153.2, 166.7]
        + [166.7, 168.6, 162.9, 189.9, 112.7, 89.0, 116.1, 227.8, 193.6, 140.0],
        strict=True,
    )
)
_HEAVY = dict(
    zip(
        AMINO_ACIDS,
        [5, 11, 8, 8, 6, 9, 9, 4, 10, 8, 8, 9, 8, 11, 7, 6, 7, 14, 12, 7],
        strict=True,
    )
)
# Theoretical maximal ASA, Tien et al. (2013), Å^2.
_MAX_ASA = dict(
    zip(
        AMINO_ACIDS,
        [129, 274, 195, 193, 167, 225, 223, 104, 224, 197]
        + [201, 236, 224, 240, 159, 155, 172, 285, 263, 174],
        strict=True,
    )
)


@dataclass(frozen=True)
class ResidueGraph:
    """A protein as the network's input (numpy; the pipeline turns it into tensors).

    Attributes:
        features: (R, 23) float32: one-hot (20), volume, buriedness, relative SASA.
        backbone: (R, 3, 3) float64 N, CA, C coordinates, Å (local frames, C-alpha positions).
        edges: (2, E) int64 directed residue pairs (both directions of each contact).
        edge_weight: (E,) float32 contact "areas" (S-GCN_r).
    """

    features: np.ndarray
    backbone: np.ndarray
    edges: np.ndarray
    edge_weight: np.ndarray

    @property
    def num_residues(self) -> int:
        return len(self.features)


def residue_contacts(
    protein: Protein, cutoff: float = CONTACT_CUTOFF
) -> tuple[np.ndarray, np.ndarray]:
    """Residue pairs with heavy atoms closer than ``cutoff`` Å and the count of such atom pairs.

    Returns:
        edges (2, E) int64 in both directions, sorted; counts (E,) int64.
    """
    pairs = cKDTree(protein.coords).query_pairs(cutoff, output_type="ndarray")
    a, b = protein.residue_index[pairs[:, 0]], protein.residue_index[pairs[:, 1]]
    keep = a != b
    a, b = a[keep], b[keep]
    n = protein.num_residues
    codes = np.concatenate([a * n + b, b * n + a])
    unique, counts = np.unique(codes, return_counts=True)
    return np.stack([unique // n, unique % n]), counts


def voronota_contacts(protein: Protein) -> tuple[np.ndarray, np.ndarray]:
    """Residue-residue Voronoi contact areas from the ``voronota`` binary (Å^2).

    Not covered by the tests (CI machines lack the binary) beyond its refusal without it.

    Raises:
        InputError: ``voronota`` is not on PATH or failed on the structure.
    """
    binary = shutil.which("voronota")
    if binary is None:
        raise InputError(protein.source, "contacts='voronota' needs the voronota binary on PATH")
    with tempfile.TemporaryDirectory() as folder:
        pdb = write_structure(protein, Path(folder) / "input.pdb")
        balls = subprocess.run(
            [binary, "get-balls-from-atoms-file", "--annotated"],
            input=pdb.read_bytes(),
            capture_output=True,
            check=False,
        )
        result = subprocess.run(
            [binary, "calculate-contacts", "--annotated"],
            input=balls.stdout,
            capture_output=True,
            check=False,
        )
    if balls.returncode or result.returncode:
        raise InputError(protein.source, f"voronota failed: {result.stderr.decode()[-200:]}")
    index = {key: i for i, key in enumerate(protein.residue_keys())}
    areas: dict[tuple[int, int], float] = {}
    for line in result.stdout.decode().splitlines():
        fields = line.split()  # annotated: atom1 atom2 area distance ...
        if len(fields) < 3:
            continue
        ends = [voronota_residue(field) for field in fields[:2]]
        if None in ends or ends[0] == ends[1]:
            continue
        i, j = index.get(ends[0]), index.get(ends[1])  # type: ignore[arg-type]
        if i is None or j is None:
            continue
        for key in ((i, j), (j, i)):
            areas[key] = areas.get(key, 0.0) + float(fields[2])
    keys = sorted(areas)
    edges = np.asarray(keys, dtype=np.int64).reshape(-1, 2).T
    return edges, np.asarray([areas[k] for k in keys])


def voronota_residue(annotation: str) -> tuple[str, int, str] | None:
    """(chain, resnum, icode) from a voronota atom annotation ``c<A>r<12>i<B>a<...>R<ALA>A<CA>``."""
    parts: dict[str, str] = {}
    for key in ("c", "r", "i"):
        start = annotation.find(f"{key}<")
        if start >= 0:
            parts[key] = annotation[start + 2 : annotation.find(">", start)]
    if "c" not in parts or "r" not in parts:
        return None
    return parts["c"], int(parts["r"]), parts.get("i", "")


def _relative_sasa(protein: Protein) -> np.ndarray:
    import biotite.structure as struc

    atom_sasa = struc.sasa(protein.to_atom_array(), point_number=SASA_POINTS, vdw_radii="Single")
    per_residue = np.bincount(
        protein.residue_index, weights=np.nan_to_num(atom_sasa), minlength=protein.num_residues
    )
    maximal = np.array([_MAX_ASA.get(name, 200.0) for name in protein.resname])
    return np.clip(per_residue / maximal, 0.0, 1.5)


def build_graph(
    protein: Protein,
    contacts: Literal["atoms", "voronota"] = "atoms",
) -> ResidueGraph:
    """The residue graph of ``protein`` (features, backbone, contacts), see the module docstring.

    Args:
        contacts: ``"atoms"`` (pure Python, heavy atoms within 5 Å) or ``"voronota"``.
    """
    n = protein.num_residues
    features = np.zeros((n, NUM_FEATURES), dtype=np.float32)
    known = protein.aa_index >= 0
    features[np.flatnonzero(known), protein.aa_index[known]] = 1.0
    present = np.bincount(protein.residue_index, minlength=n)
    volume = np.array([_VOLUME.get(r, 140.0) for r in protein.resname])
    heavy = np.array([_HEAVY.get(r, 8) for r in protein.resname])
    features[:, 20] = volume * np.minimum(present / heavy, 1.0) / 200.0
    ca = protein.backbone()[:, 1]
    neighbours = cKDTree(protein.coords).query_ball_point(ca, BURIAL_RADIUS, return_length=True)
    features[:, 21] = np.asarray(neighbours) / 100.0
    features[:, 22] = _relative_sasa(protein)
    if contacts == "voronota":
        edges, weight = voronota_contacts(protein)
        weight = weight / 10.0  # Å^2 -> about the same scale as the atom-pair counts below
    else:
        edges, counts = residue_contacts(protein)
        weight = counts / 10.0
    return ResidueGraph(
        features=features,
        backbone=protein.backbone(),
        edges=edges.astype(np.int64),
        edge_weight=np.asarray(weight, dtype=np.float32),
    )
