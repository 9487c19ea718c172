"""Reading PDB and mmCIF: altlocs, several chains, non-standard residues, missing atoms, bad input."""

from __future__ import annotations

from pathlib import Path

import gemmi
import numpy as np
import pytest

from convsuite.core_ops.errors import InputError
from convsuite.proteins.data import read_structure, write_bfactors, write_structure


def pdb_line(
    serial, name, resname, chain, resnum, xyz, element, altloc=" ", occ=1.0, record="ATOM"
):
    """One PDB ATOM/HETATM record in its fixed columns."""
    x, y, z = xyz
    return (
        f"{record:<6}{serial:>5} {name:<4}{altloc}{resname:>3} {chain}{resnum:>4}    "
        f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{20.0:6.2f}          {element:>2}"
    )


def _glycines(count: int, chain: str = "A", start: int = 1, resname: str = "GLY") -> list[str]:
    """Backbone atoms of an extended chain of ``count`` residues (3.8 Å apart)."""
    lines = []
    for i in range(count):
        x = 3.8 * i
        for k, (name, dx, dy, el) in enumerate(
            [
                ("N", -1.2, 0.5, "N"),
                ("CA", 0.0, 0.0, "C"),
                ("C", 1.2, 0.6, "C"),
                ("O", 1.3, 1.8, "O"),
            ]
        ):
            lines.append(
                pdb_line(4 * i + k + 1, name, resname, chain, start + i, (x + dx, dy, 0.0), el)
            )
    return lines


def test_pdb_and_mmcif_agree(example_pdb: Path, tmp_path: Path) -> None:
    pdb = read_structure(example_pdb)
    assert pdb.num_residues == 83 and pdb.dropped == 0
    assert set(pdb.element) <= {"C", "N", "O", "S"}  # heavy atoms only (the file has H)
    cif = tmp_path / "2cvi.cif"
    structure = gemmi.read_structure(str(example_pdb))
    structure.setup_entities()
    structure.make_mmcif_document().write_file(str(cif))
    from_cif = read_structure(cif)
    np.testing.assert_allclose(from_cif.coords, pdb.coords)
    assert from_cif.resname.tolist() == pdb.resname.tolist()


def test_altlocs_chains_and_nonstandard(tmp_path: Path) -> None:
    lines = _glycines(3, "A") + _glycines(2, "B", start=10)
    # An MSE (selenomethionine) residue with SE, and an alternate location of its CA.
    mse = [
        pdb_line(50, "N", "MSE", "B", 12, (6.4, 0.5, 0.0), "N", record="HETATM"),
        pdb_line(
            51, "CA", "MSE", "B", 12, (7.6, 0.0, 0.0), "C", altloc="A", occ=0.6, record="HETATM"
        ),
        pdb_line(
            52, "CA", "MSE", "B", 12, (7.6, 0.0, 9.0), "C", altloc="B", occ=0.4, record="HETATM"
        ),
        pdb_line(53, "C", "MSE", "B", 12, (8.8, 0.6, 0.0), "C", record="HETATM"),
        pdb_line(54, "SE", "MSE", "B", 12, (7.6, -1.5, 0.5), "SE", record="HETATM"),
        pdb_line(60, "O", "HOH", "B", 100, (20.0, 0.0, 0.0), "O", record="HETATM"),
    ]
    path = tmp_path / "mixed.pdb"
    path.write_text("\n".join(lines + mse + ["END"]) + "\n")
    protein = read_structure(path)
    assert protein.chain.tolist() == ["A", "A", "A", "B", "B", "B"]
    assert protein.resname[-1] == "MET" and protein.aa_index[-1] == 12  # MSE -> MET
    ca = protein.backbone()[-1, 1]
    np.testing.assert_allclose(ca, [7.6, 0.0, 0.0])  # altloc A, not B
    assert (protein.element == "SE").sum() == 1


def test_missing_atoms(tmp_path: Path) -> None:
    lines = _glycines(4)
    broken = [line for line in lines if not (" CA " in line and line[22:26].strip() == "2")]
    path = tmp_path / "missing.pdb"
    path.write_text("\n".join(broken) + "\nEND\n")
    protein = read_structure(path)
    assert protein.num_residues == 3 and protein.dropped == 1
    assert protein.resnum.tolist() == [1, 3, 4]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("this is not a structure\n", "not"),
        (
            "\n".join([pdb_line(1, "O", "HOH", "A", 1, (0, 0, 0), "O", record="HETATM"), "END"]),
            "no protein residues",
        ),
        (
            "\n".join(
                [pdb_line(i + 1, "CB", "ALA", "A", i + 1, (3.8 * i, 0, 0), "C") for i in range(5)]
                + ["END"]
            ),
            "misses a backbone atom",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.pdb"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as error:
        read_structure(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_write_round_trip_and_bfactors(example, example_pdb: Path, tmp_path: Path) -> None:
    written = write_structure(example, tmp_path / "copy.pdb")
    again = read_structure(written)
    np.testing.assert_allclose(again.coords, example.coords, atol=1e-3)
    scores = np.linspace(0, 100, example.num_residues)
    out = write_bfactors(example, scores, tmp_path / "scored.pdb")
    structure = gemmi.read_structure(str(out))
    first = structure[0][0][0]
    last = structure[0][0][len(structure[0][0]) - 1]
    assert first[0].b_iso == pytest.approx(0.0) and last[0].b_iso == pytest.approx(100.0)
    # Every atom of the original file is in the B-factor copy.
    original = gemmi.read_structure(str(example_pdb))
    assert structure[0].count_atom_sites() == original[0].count_atom_sites()
