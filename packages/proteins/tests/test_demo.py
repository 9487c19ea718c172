"""The demo writes its figures as PNGs and the scored decoy; S-GCN finds the decoy's errors."""

from __future__ import annotations

from pathlib import Path

import gemmi
import pytest

from convsuite.proteins.data import read_structure
from convsuite.proteins.demo import example_native, run


@pytest.mark.slow
def test_demo(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert [p.name for p in result.figures] == ["proteins_residues.png", "proteins_structure.png"]
    for figure in result.figures:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000
    summary = result.summary
    assert summary["relaxed"] is True and summary["residues"] == 83
    # This decoy: S-GCN 0.35, the GCN baseline -0.27 (held-out decoys on average: 0.34 and 0.11).
    assert summary["S-GCN"]["residue_pearson"] > max(
        0.25, summary["GCN baseline"]["residue_pearson"]
    )
    assert abs(summary["S-GCN"]["global_score"] - summary["true_global_lddt"]) < 0.2
    scored = gemmi.read_structure(str(tmp_path / "proteins_decoy_scored.pdb"))
    assert scored[0].count_atom_sites() == len(read_structure(example_native()).coords)
    bfactors = [residue[0].b_iso for residue in scored[0][0]]
    assert 0 <= min(bfactors) < max(bfactors) <= 100
