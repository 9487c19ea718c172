"""The quickstart notebook runs top to bottom, shows its figures inline and says what it did."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from convsuite_dev.testing import assert_figures_shown, execute_notebook, notebook_text

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook(tmp_path: Path) -> None:
    notebook = execute_notebook(NOTEBOOK, tmp_path)
    assert assert_figures_shown(notebook) == 3  # maps, spectra, your own map's spectra
    printed = notebook_text(notebook)
    assert "observed pixels unchanged: True" in printed and "Nside 64:" in printed
    rows = re.findall(
        r"^(\S+) +MSE in holes +(\d+\.\d) muK\^2 .* cosmic variance (\d+)%$", printed, re.M
    )
    mse = {name: float(value) for name, value, _ in rows}
    inside = {name: int(percent) for name, _, percent in rows}
    assert set(mse) == {"SkyReconNet", "realization", "diffusive"}
    assert mse["SkyReconNet"] < mse["diffusive"]  # the mean fill: lowest error
    assert 1.5 < mse["realization"] / mse["SkyReconNet"] < 3  # about twice, as the text says
    assert inside["realization"] >= 90 > inside["SkyReconNet"]  # but the right power
    # "your own map": a K_CMB Planck-layout file off the training prior
    assert "unit K_CMB (x 1e+06 to muK)" in printed
    ratios = [
        float(r)
        for r in re.findall(r"estimated spectrum / truth's, ell \S+: (\S+)$", printed, re.M)
    ]
    assert len(ratios) == 3 and all(0.8 < r < 1.25 for r in ratios)
    power, percent = re.search(
        r"hole power / truth's (\S+), cosmic variance (\d+)%", printed
    ).groups()
    assert 0.8 < float(power) < 1.2 and int(percent) >= 90
    assert sorted(p.name for p in tmp_path.iterdir()) == ["masked.fits", "planck.fits"]
