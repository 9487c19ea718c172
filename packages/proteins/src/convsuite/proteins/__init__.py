"""convsuite-proteins: S-GCN spherical graph convolutions for protein model quality assessment.

The names below load their module on first use (PEP 562), so ``import convsuite.proteins`` (and the
command line's ``--help``) costs no torch, gemmi or biotite import.
"""

from __future__ import annotations

from convsuite.core_ops.lazy import lazy_exports

_EXPORTS = {
    "Protein": "convsuite.proteins.data",
    "read_structure": "convsuite.proteins.data",
    "write_structure": "convsuite.proteins.data",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
