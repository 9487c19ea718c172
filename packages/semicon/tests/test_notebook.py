"""The quickstart notebook runs top to bottom and shows its figures inline."""

from __future__ import annotations

from pathlib import Path

import pytest
from convsuite_dev.testing import assert_figures_shown, execute_notebook, notebook_text

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs_and_shows_its_figures(tmp_path: Path) -> None:
    notebook = execute_notebook(NOTEBOOK, tmp_path)
    printed = notebook_text(notebook)
    assert "mixed-type maps flagged novel" in printed and "'grid': 4096" in printed
    assert "novel-pattern maps flagged:" in printed
    assert assert_figures_shown(notebook) == 2
