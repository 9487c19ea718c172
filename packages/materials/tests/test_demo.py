"""The demo runs with the bundled weights, writes its figures and beats PCA-3 scored the
reference's way (against its reconstruction)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo(tmp_path: Path) -> None:
    from convsuite.materials.demo import run

    result = run(tmp_path)
    assert [p.name for p in result.figures] == ["materials_maps.png", "materials_spectra.png"]
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.figures)
    assert set(result.summary) == {
        "VAE",
        "PCA-3 plain",
        "PCA-3 local",
        "PCA-3 either",
        "ring median",
        "half-ring median",
    }
    assert result.summary["VAE"]["f1"] > result.summary["PCA-3 plain"]["f1"]
    assert result.summary["VAE"]["f1"] > 0.8
    # a pixel's best-matching half-ring of neighbours is a sharper reference than the whole ring
    assert result.summary["half-ring median"]["f1"] > result.summary["ring median"]["f1"]
