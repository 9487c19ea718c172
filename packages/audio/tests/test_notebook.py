"""The quickstart notebook runs top to bottom, shows its figure inline and says what it did."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from convsuite_dev.testing import assert_figures_shown, execute_notebook, notebook_text

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook(tmp_path: Path) -> None:
    notebook = execute_notebook(NOTEBOOK, tmp_path)
    assert assert_figures_shown(notebook) == 1
    printed = notebook_text(notebook)
    assert "3.0 s at 16 kHz" in printed and "streaming equals offline: True" in printed
    mic, enhanced = map(
        float, re.search(r"microphone (\d\.\d\d), enhanced (\d\.\d\d)", printed).groups()
    )
    assert 1.0 <= mic <= 4.7 and 1.0 <= enhanced <= 4.7
    players = sum(
        "audio" in str(out.get("data", {}).get("text/html", ""))
        for cell in notebook.cells
        for out in cell.get("outputs", [])
    )
    assert players == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["farend.wav", "mic.wav"]
