"""Protein structures from PDB and mmCIF files (gemmi), as residue-indexed numpy arrays.

Reading keeps the first model, the first alternate location of each atom (highest occupancy is
gemmi's choice), heavy atoms only, and the amino-acid residues of every chain; non-standard amino
acids (MSE, SEP, MLY, ...) are mapped to their parent residue through gemmi's residue table
(MSE -> MET). Residues without all of N, C-alpha and C cannot have a local frame and are dropped
(``Protein.dropped`` counts them). Writing goes through gemmi too (PDB or mmCIF by suffix),
atomically.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import gemmi
import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_path

__all__ = [
    "AMINO_ACIDS",
    "Protein",
    "read_structure",
    "write_bfactors",
    "write_structure",
]

AMINO_ACIDS = (
    "ALA ARG ASN ASP CYS GLN GLU GLY HIS ILE LEU LYS MET PHE PRO SER THR TRP TYR VAL".split()
)
_ONE_TO_THREE = {gemmi.find_tabulated_residue(n).one_letter_code.upper(): n for n in AMINO_ACIDS}
_INDEX = {name: i for i, name in enumerate(AMINO_ACIDS)}
_BACKBONE = ("N", "CA", "C")
_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")


@dataclass(frozen=True)
class Protein:
    """Heavy atoms of the amino-acid residues of one structure.

    Attributes:
        coords: (A, 3) float64 atom coordinates, Å.
        atom_name: (A,) atom names (``"CA"``).
        element: (A,) element symbols, upper case (``"C"``, ``"SE"``).
        residue_index: (A,) int64, the residue each atom belongs to (0..R-1, sorted).
        chain: (R,) chain names.
        resnum: (R,) int64 residue numbers (author numbering).
        icode: (R,) insertion codes (``""`` when none).
        resname: (R,) residue names after mapping (``MSE`` -> ``MET``; unknown ones kept).
        aa_index: (R,) int64 index into :data:`AMINO_ACIDS`, -1 for unknown residues (``UNK``).
        source: the file it was read from (or a name).
        dropped: residues dropped for missing backbone atoms.
    """

    coords: np.ndarray
    atom_name: np.ndarray
    element: np.ndarray
    residue_index: np.ndarray
    chain: np.ndarray
    resnum: np.ndarray
    icode: np.ndarray
    resname: np.ndarray
    aa_index: np.ndarray
    source: str = "structure"
    dropped: int = 0

    @property
    def num_residues(self) -> int:
        return len(self.chain)

    def backbone(self) -> np.ndarray:
        """(R, 3, 3) float64 coordinates of N, CA, C of each residue, Å."""
        out = np.empty((self.num_residues, 3, 3))
        for k, name in enumerate(_BACKBONE):
            rows = np.flatnonzero(self.atom_name == name)
            out[self.residue_index[rows], k] = self.coords[rows]
        return out

    def with_coords(self, coords: np.ndarray, source: str | None = None) -> Protein:
        """The same atoms at new (A, 3) coordinates."""
        if coords.shape != self.coords.shape:
            raise ValueError(f"coords must be {self.coords.shape}, got {coords.shape}")
        return replace(
            self, coords=np.asarray(coords, dtype=np.float64), source=source or self.source
        )

    def residue_keys(self) -> list[tuple[str, int, str]]:
        """(chain, resnum, icode) of each residue."""
        return list(
            zip(self.chain.tolist(), self.resnum.tolist(), self.icode.tolist(), strict=True)
        )

    def to_atom_array(self):
        """A biotite ``AtomArray`` of the atoms (for SASA and lDDT)."""
        import biotite.structure as struc

        array = struc.AtomArray(len(self.coords))
        array.coord = self.coords.astype(np.float32)
        array.atom_name = self.atom_name
        array.element = self.element
        array.res_name = self.resname[self.residue_index]
        array.res_id = self.resnum[self.residue_index]
        array.ins_code = self.icode[self.residue_index]
        array.chain_id = self.chain[self.residue_index]
        array.hetero = np.zeros(len(self.coords), dtype=bool)
        return array


def _standard_name(name: str) -> tuple[str, bool]:
    """(mapped residue name, is an amino acid) for a residue name from a file."""
    info = gemmi.find_tabulated_residue(name)
    if info is None or not info.is_amino_acid():
        return name, False
    if name in _INDEX:
        return name, True
    parent = _ONE_TO_THREE.get(info.one_letter_code.upper())
    return (parent or name), True


def _read_gemmi(path: Path) -> gemmi.Structure:
    if not path.is_file():
        raise InputError(path, "file does not exist")
    try:
        structure = gemmi.read_structure(str(path), merge_chain_parts=True)
    except (RuntimeError, ValueError) as error:
        raise InputError(path, f"is not a readable PDB or mmCIF structure ({error})") from None
    if len(structure) == 0 or sum(len(chain) for chain in structure[0]) == 0:
        raise InputError(path, "is not a structure: no atoms in a PDB or mmCIF model")
    return structure


def read_structure(path: str | os.PathLike[str]) -> Protein:
    """Read the amino-acid heavy atoms of the first model of a PDB or mmCIF file (or .gz).

    Raises:
        InputError: missing file, not a structure, no amino-acid residues, or no residue with all
            of N, CA and C.
    """
    path = Path(path)
    structure = _read_gemmi(path)
    structure.remove_alternative_conformations()
    structure.remove_hydrogens()
    coords, names, elements, residue_of = [], [], [], []
    chains, resnums, icodes, resnames, aa = [], [], [], [], []
    seen_protein = dropped = 0
    for chain in structure[0]:
        for residue in chain:
            resname, is_amino = _standard_name(residue.name)
            if not is_amino:
                continue
            seen_protein += 1
            atoms = {atom.name: atom for atom in residue}
            if not all(name in atoms for name in _BACKBONE):
                dropped += 1
                continue
            index = len(chains)
            chains.append(chain.name)
            resnums.append(residue.seqid.num)
            icodes.append(residue.seqid.icode.strip())
            resnames.append(resname)
            aa.append(_INDEX.get(resname, -1))
            for atom in atoms.values():
                coords.append(atom.pos.tolist())
                names.append(atom.name)
                elements.append(atom.element.name.upper())
                residue_of.append(index)
    if seen_protein == 0:
        raise InputError(path, "has no protein residues (no amino acids in the first model)")
    if not chains:
        raise InputError(
            path, f"every one of its {seen_protein} residues misses a backbone atom (N, CA or C)"
        )
    return Protein(
        coords=np.asarray(coords, dtype=np.float64),
        atom_name=np.asarray(names),
        element=np.asarray(elements),
        residue_index=np.asarray(residue_of, dtype=np.int64),
        chain=np.asarray(chains),
        resnum=np.asarray(resnums, dtype=np.int64),
        icode=np.asarray(icodes),
        resname=np.asarray(resnames),
        aa_index=np.asarray(aa, dtype=np.int64),
        source=str(path),
        dropped=dropped,
    )


def _to_gemmi(protein: Protein, bfactors: np.ndarray | None) -> gemmi.Structure:
    structure = gemmi.Structure()
    model = gemmi.Model(1)
    chains: dict[str, gemmi.Chain] = {}
    order: list[str] = []
    rows = np.argsort(protein.residue_index, kind="stable")
    starts = np.searchsorted(protein.residue_index[rows], np.arange(protein.num_residues + 1))
    for r in range(protein.num_residues):
        name = str(protein.chain[r])
        if name not in chains:
            chains[name] = gemmi.Chain(name)
            order.append(name)
        residue = gemmi.Residue()
        residue.name = str(protein.resname[r])
        residue.seqid = gemmi.SeqId(int(protein.resnum[r]), str(protein.icode[r]) or " ")
        for a in rows[starts[r] : starts[r + 1]]:
            atom = gemmi.Atom()
            atom.name = str(protein.atom_name[a])
            atom.element = gemmi.Element(str(protein.element[a]))
            atom.pos = gemmi.Position(*protein.coords[a])
            atom.occ = 1.0
            atom.b_iso = 0.0 if bfactors is None else float(bfactors[r])
            residue.add_atom(atom)
        chains[name].add_residue(residue)
    for name in order:
        model.add_chain(chains[name])
    structure.add_model(model)
    structure.setup_entities()
    return structure


def write_structure(
    protein: Protein, path: str | os.PathLike[str], bfactors: np.ndarray | None = None
) -> Path:
    """Write ``protein`` as PDB (``.pdb``) or mmCIF (``.cif``), atomically.

    Args:
        bfactors: (R,) per-residue values for the B-factor column (e.g. predicted scores x 100)
            or None for zeros.
    """
    path = Path(path)
    structure = _to_gemmi(protein, bfactors)
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".cif", ".mmcif"):
            structure.make_mmcif_document().write_file(str(tmp))
        else:
            structure.write_pdb(str(tmp))
    return path


def write_bfactors(protein: Protein, scores: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Copy ``protein``'s source file to ``path`` with ``scores`` (R,) in the B-factor column.

    The whole original structure is kept (hydrogens, ligands, other models); atoms of scored
    residues get their residue's score, every other atom 0. PDB or mmCIF by ``path``'s suffix.
    """
    path = Path(path)
    structure = _read_gemmi(Path(protein.source))
    lookup = dict(
        zip(protein.residue_keys(), np.asarray(scores, dtype=float).tolist(), strict=True)
    )
    for model in structure:
        for chain in model:
            for residue in chain:
                key = (chain.name, residue.seqid.num, residue.seqid.icode.strip())
                value = lookup.get(key, 0.0)
                for atom in residue:
                    atom.b_iso = value
    with atomic_path(path) as tmp:
        if path.suffix.lower() in (".cif", ".mmcif"):
            structure.make_mmcif_document().write_file(str(tmp))
        else:
            structure.write_pdb(str(tmp))
    return path


def is_structure_file(path: Path) -> bool:
    """Whether ``path``'s name ends like a PDB or mmCIF file (optionally gzipped)."""
    return path.name.lower().endswith(_SUFFIXES)
