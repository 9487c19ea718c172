"""Per-residue lDDT of a model against its reference structure (biotite's implementation).

lDDT (Mariani et al. 2013): for each atom pair within 15 Å in the reference (atoms of other
residues only), the fraction of the four tolerances (0.5, 1, 2, 4 Å) that the model's distance
keeps; averaged per residue. 1 is correct, 0 is wrong. This is the default per-residue target
(the paper's is the CAD-score, which needs ``voronota-cadscore``).
"""

from __future__ import annotations

import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.proteins.data.structure import Protein

__all__ = ["residue_lddt"]


def _atom_keys(protein: Protein) -> list[tuple[str, int, str, str]]:
    r = protein.residue_index
    return list(
        zip(
            protein.chain[r].tolist(),
            protein.resnum[r].tolist(),
            protein.icode[r].tolist(),
            protein.atom_name.tolist(),
            strict=True,
        )
    )


def residue_lddt(model: Protein, reference: Protein) -> np.ndarray:
    """(R,) per-residue lDDT of ``model``'s residues against ``reference``, in [0, 1].

    Atoms are matched by chain, residue number, insertion code and atom name; atoms present in only
    one of the two are left out. Residues of the model with no matched atom, or no reference
    contact, get NaN.

    Raises:
        InputError: the two structures share no atom.
    """
    import biotite.structure as struc

    if (
        model.atom_name.shape == reference.atom_name.shape
        and np.array_equal(model.atom_name, reference.atom_name)
        and np.array_equal(model.residue_index, reference.residue_index)
    ):
        model_rows = reference_rows = np.arange(len(model.coords))
    else:
        where = {key: i for i, key in enumerate(_atom_keys(reference))}
        pairs = [(i, where[k]) for i, k in enumerate(_atom_keys(model)) if k in where]
        if not pairs:
            raise InputError(model.source, f"shares no atom with the reference {reference.source}")
        model_rows, reference_rows = (
            np.asarray(p, dtype=np.int64) for p in zip(*pairs, strict=True)
        )
    ref = reference.to_atom_array()[reference_rows]
    coords = model.coords[model_rows].astype(np.float32)
    bins = model.residue_index[model_rows]
    with np.errstate(invalid="ignore", divide="ignore"):
        per_bin = struc.lddt(ref, coords, aggregation=bins)
    out = np.full(model.num_residues, np.nan)
    present = np.unique(bins)
    out[present] = np.asarray(per_bin)[present]
    return out
