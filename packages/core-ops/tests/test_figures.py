"""figures.py: figures as objects (no pyplot, no backend) saved atomically."""

from __future__ import annotations

import subprocess
import sys
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from matplotlib.layout_engine import ConstrainedLayoutEngine

from convsuite.core_ops.figures import new_figure, save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _drawing():
    figure = new_figure(figsize=(2.0, 1.5))
    axis = figure.subplots()
    axis.imshow(np.arange(12.0).reshape(3, 4), cmap="viridis")
    axis.set_title("ramp")
    return figure


def test_save_figure_writes_a_png_of_the_asked_size(tmp_path: Path) -> None:
    target = tmp_path / "plots" / "ramp.png"  # the folder is created
    assert save_figure(_drawing(), target, dpi=100) == target
    assert target.read_bytes().startswith(PNG_MAGIC)
    pixels = imread(target)
    assert pixels.shape[:2] == (150, 200)  # 1.5 x 2 inches at 100 dpi
    assert pixels[..., :3].std() > 0.05  # something was drawn
    assert sorted(p.name for p in target.parent.iterdir()) == ["ramp.png"]  # no temporary left


def test_format_follows_the_suffix(tmp_path: Path) -> None:
    svg = save_figure(_drawing(), tmp_path / "ramp.svg")
    assert b"<svg" in svg.read_bytes()[:500]
    pdf = save_figure(_drawing(), tmp_path / "ramp.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")


def test_a_failing_savefig_leaves_no_target_and_keeps_an_old_one(tmp_path, monkeypatch) -> None:
    figure = _drawing()

    def half_then_fail(path, **kwargs):
        Path(path).write_bytes(PNG_MAGIC + b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(figure, "savefig", half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(figure, tmp_path / "new.png")
    assert list(tmp_path.iterdir()) == []

    old = tmp_path / "old.png"
    save_figure(_drawing(), old)
    before = old.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(figure, old)
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.png"]


def test_new_figure_uses_constrained_layout_and_takes_figure_arguments() -> None:
    figure = new_figure(figsize=(3, 2), dpi=50)
    assert isinstance(figure.get_layout_engine(), ConstrainedLayoutEngine)
    assert tuple(figure.get_size_inches()) == (3.0, 2.0) and figure.dpi == 50
    assert new_figure(layout="tight").get_layout_engine() is not None


def test_no_pyplot_and_no_backend_choice(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from convsuite.core_ops.figures import new_figure, save_figure\n"
        "figure = new_figure()\n"
        "figure.subplots().plot([0, 1], [1, 0])\n"
        f"save_figure(figure, {str(tmp_path / 'line.png')!r})\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "line.png").read_bytes().startswith(PNG_MAGIC)


def test_a_notebook_shows_the_figure_without_pyplot() -> None:
    """IPython's formatters (fresh: no inline backend set up) render the figure as a PNG."""
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(_drawing())
    assert data["image/png"].startswith(PNG_MAGIC)
    assert imread(BytesIO(data["image/png"]), format="png")[..., :3].std() > 0.05
