"""Figures as objects: library code builds ``matplotlib.figure.Figure`` and never picks a backend.

Figure functions in every package return a :class:`~matplotlib.figure.Figure` made by
:func:`new_figure` (matplotlib's object API, as in its "embedding in a web application server"
example), so a notebook shows it inline and a script or CLI saves it with :func:`save_figure`.
Nothing here calls ``matplotlib.use`` or touches pyplot's global state.
"""

from __future__ import annotations

import os
from io import BytesIO
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from convsuite.core_ops.io import atomic_path

__all__ = ["new_figure", "save_figure"]


class _InlineFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that Jupyter shows as a PNG when a cell ends with it.

    IPython registers a PNG printer for figures only once pyplot has set up the inline backend;
    figures made without pyplot would show as ``<Figure size ...>`` text. IPython falls back to
    ``_repr_png_``, which renders like the inline backend does (tight bounding box).
    """

    def _repr_png_(self) -> bytes:
        buffer = BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def new_figure(**kwargs: Any) -> Figure:
    """A figure with constrained layout; ``kwargs`` go to :class:`~matplotlib.figure.Figure`
    (``figsize=(w, h)`` in inches, ``dpi``...). A notebook cell ending with it shows it inline."""
    kwargs.setdefault("layout", "constrained")
    return _InlineFigure(**kwargs)


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Write ``figure`` to ``path`` atomically (format from the suffix: .png, .pdf, .svg).

    Returns the path. A half-written figure is never left behind.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path
