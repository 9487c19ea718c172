"""Readers and writers of PDB/mmCIF structures, residue graphs and their features, lDDT targets,
the native structures and the decoy generator."""

from convsuite.proteins.data.batch import GraphBatch, collate
from convsuite.proteins.data.features import NUM_FEATURES, ResidueGraph, build_graph
from convsuite.proteins.data.lddt import residue_lddt
from convsuite.proteins.data.natives import Native, list_natives, mdanalysistests_data
from convsuite.proteins.data.structure import (
    AMINO_ACIDS,
    Protein,
    is_structure_file,
    read_structure,
    write_bfactors,
    write_structure,
)

__all__ = [
    "AMINO_ACIDS",
    "NUM_FEATURES",
    "GraphBatch",
    "Native",
    "Protein",
    "ResidueGraph",
    "build_graph",
    "collate",
    "is_structure_file",
    "list_natives",
    "mdanalysistests_data",
    "read_structure",
    "residue_lddt",
    "write_bfactors",
    "write_structure",
]
