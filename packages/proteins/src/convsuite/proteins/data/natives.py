"""The native structures decoy sets are made from: PDB files shipped by ``mdanalysistests``.

``natives.txt`` (committed beside this module) lists each file with its PDB ID, chain and split
(train / val / test), so that evaluation on proteins outside the bundled weights' training set is
checkable. ``mdanalysistests`` is a recipe dependency only (``pip install mdanalysistests``); it is
located without importing it (its ``__init__`` needs MDAnalysis).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from convsuite.core_ops.errors import InputError

__all__ = ["Native", "list_natives", "mdanalysistests_data"]


@dataclass(frozen=True)
class Native:
    """One row of ``natives.txt``: a file under MDAnalysisTests/data and its split."""

    file: str
    pdb_id: str
    chain: str
    split: str


def list_natives(split: str | None = None) -> list[Native]:
    """Rows of ``natives.txt`` (all, or those of ``split``: train, val, test)."""
    text = (resources.files("convsuite.proteins.data") / "natives.txt").read_text("utf-8")
    rows = [Native(*line.split("\t")) for line in text.splitlines() if not line.startswith("#")]
    return [row for row in rows if split is None or row.split == split]


def mdanalysistests_data() -> Path:
    """The ``MDAnalysisTests/data`` folder of the installed ``mdanalysistests`` package.

    Raises:
        InputError: the package is not installed.
    """
    spec = importlib.util.find_spec("MDAnalysisTests")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "mdanalysistests",
            "not installed: the natives come from it (pip install mdanalysistests --no-deps)",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"
