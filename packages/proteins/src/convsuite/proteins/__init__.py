"""convsuite-proteins: S-GCN spherical graph convolutions for protein model quality assessment.

The names below load their module on first use (PEP 562), so ``import convsuite.proteins`` (and the
command line's ``--help``) costs no torch, gemmi or biotite import.
"""

from __future__ import annotations

from convsuite.core_ops.lazy import lazy_exports

_EXPORTS = {
    "GCNConfig": "convsuite.proteins.model",
    "GCNQualityNet": "convsuite.proteins.model",
    "ModelQualityAssessor": "convsuite.proteins.infer",
    "Protein": "convsuite.proteins.data",
    "QualityScore": "convsuite.proteins.infer",
    "SGCNConfig": "convsuite.proteins.model",
    "SGCNQualityNet": "convsuite.proteins.model",
    "assessment_metrics": "convsuite.proteins.metrics",
    "build_decoy_set": "convsuite.proteins.data.decoyset",
    "build_graph": "convsuite.proteins.data",
    "load_network": "convsuite.proteins.infer",
    "make_decoys": "convsuite.proteins.data.decoys",
    "read_structure": "convsuite.proteins.data",
    "residue_lddt": "convsuite.proteins.data",
    "write_bfactors": "convsuite.proteins.data",
    "write_structure": "convsuite.proteins.data",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
