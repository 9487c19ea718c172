"""The quickstart notebook runs top to bottom, shows its figures, and reaches what its text says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from convsuite_dev.testing import assert_figures_shown, execute_notebook, notebook_text

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"
VARIANTS = ("dense 7x7", "DCLS 9 taps in 13x13", "FFT 13x13", "reparam 13x13")


@pytest.mark.slow
def test_quickstart_notebook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this: one torch thread keeps its speed steady when other processes
    # share the cores (two threads each on two busy cores run several times slower).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    notebook = execute_notebook(NOTEBOOK, tmp_path, timeout=600)
    assert assert_figures_shown(notebook) == 3  # examples, training loss, speed
    text = notebook_text(notebook)

    for name in VARIANTS:  # every variant learned: well above chance (1/3) on held-out images
        found = re.search(rf"^{re.escape(name)} +held-out accuracy (\d\.\d+)", text, re.M)
        assert found, f"no accuracy printed for {name}"
        assert float(found.group(1)) >= 0.5, found.group(0)

    found = re.search(r"max \|folded - trained\| over the test images: (\S+)", text)
    assert found and float(found.group(1)) <= 1e-4, text
    found = re.search(r"parameters: (\d+) while training, (\d+) folded", text)
    assert found and int(found.group(2)) < int(found.group(1))

    speeds = re.findall(r"^(.+?) +(\d+\.\d) ms \(median of 7\)$", text, re.M)
    assert [name for name, _ in speeds] == [*VARIANTS, "reparam 13x13, folded"]
    assert list(tmp_path.iterdir()) == []  # the notebook writes no files
