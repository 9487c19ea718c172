"""Figure functions return matplotlib Figures and never touch pyplot or the backend."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import convsuite.semicon.figures
from convsuite.semicon.data import SimulationOptions, simulate_wafer_maps
from convsuite.semicon.figures import (
    confusion_matrix_figure,
    examples_figure,
    novelty_histogram_figure,
)
from convsuite.semicon.monitor import Classification


def _result(name: str, class_name: str, score: float, novel: bool) -> Classification:
    return Classification(name, class_name, 0.9, score, novel, 0.1)


class _Monitor:
    """What the histogram reads of a monitor."""

    classes = ("center", "donut")
    threshold = 1.5


def test_confusion_matrix_counts_verdicts_with_novel_as_a_class() -> None:
    truth = ["center", "center", "donut", "scratch"]
    results = [
        _result("a", "center", 0.1, False),
        _result("b", "donut", 0.2, False),
        _result("c", "donut", 0.3, False),
        _result("d", "center", 2.0, True),
    ]
    figure = confusion_matrix_figure(truth, results, ("center", "donut"))
    assert isinstance(figure, Figure)
    (ax,) = figure.axes
    counts = np.asarray(ax.images[0].get_array())
    np.testing.assert_array_equal(counts, [[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["center", "donut", "novel"]


def test_histogram_and_examples_are_figures() -> None:
    truth = ["center", "donut", "scratch"]
    results = [_result(str(i), "center", s, s > 1.5) for i, s in enumerate((0.5, 1.0, 3.0))]
    histogram = novelty_histogram_figure(truth, results, _Monitor())
    assert isinstance(histogram, Figure)
    assert histogram.axes[0].lines[0].get_xdata()[0] == 1.5  # the threshold
    maps = simulate_wafer_maps(3, 1, SimulationOptions(grid=256, defects_scale=0.05))
    examples = examples_figure(list(zip(maps, results, strict=True)), 1.5, columns=2)
    assert isinstance(examples, Figure) and len(examples.axes) == 4
    assert examples.axes[2].get_title().endswith("NOVEL")


def test_library_code_leaves_pyplot_and_the_backend_alone() -> None:
    # pyplot itself may be imported by a dependency (MONAI imports it), so check our sources.
    package = Path(convsuite.semicon.figures.__file__).parent
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert "pyplot" not in text and "matplotlib.use(" not in text, source
    code = (
        "import matplotlib; backend = matplotlib.get_backend(); "
        "import convsuite.semicon.figures, convsuite.semicon.demo; "
        "print(matplotlib.get_backend() == backend)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["True"]
