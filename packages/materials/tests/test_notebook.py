"""The quickstart notebook runs top to bottom, shows its figures inline and finds the anomalies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from convsuite_dev.testing import assert_figures_shown, execute_notebook, notebook_text

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook(tmp_path: Path) -> None:
    notebook = execute_notebook(NOTEBOOK, tmp_path)
    assert assert_figures_shown(notebook) == 2  # maps, spectra
    printed = notebook_text(notebook)
    f1 = float(re.search(r"^F1 (\d\.\d\d)$", printed, re.M).group(1))
    assert f1 > 0.8
    assert "('y', 'x', 'energy_loss') eV (48, 48)" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.hspy"]
