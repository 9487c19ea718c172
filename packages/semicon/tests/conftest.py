"""A WM-811K-like pickle (``LSWMD.pkl``'s structure) built from simulated die maps.

LSWMD.pkl was written by a pandas older than 0.20 (its class paths say so): a DataFrame of 811,457
rows and the columns ``waferMap`` (uint8 die arrays), ``dieSize`` (float), ``lotName`` (str),
``waferIndex`` (float), ``trianTestLabel`` and ``failureType`` (nested object arrays such as
``array([['Training']])``, or empty ``array([], shape=(0, 0))`` when unlabelled). Its pickle names
pandas classes by their module paths of then: ``pandas.indexes.base._new_Index`` / ``Index`` and
``pandas.indexes.numeric.Int64Index`` (the row index), ``pandas.core.internals.BlockManager``
rebuilt from its ``"0.14.1"`` state, one float block and one object block. Loading it with pandas
>= 0.20 fails with "No module named 'pandas.indexes'" (the usual fix aliases
``sys.modules['pandas.indexes'] = pandas.core.indexes``), and with pandas >= 2 also with "No module
named 'pandas.core.indexes.numeric'" (Int64Index is gone). :func:`write_legacy_wm811k` writes that
structure with today's pandas: a pickler emits those old global names from stand-in modules that
exist only while it writes.
"""

from __future__ import annotations

import copyreg
import pickle
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pandas.core.internals
import pytest

from convsuite.semicon.data import SimulationOptions, simulate_wafer_map
from convsuite.semicon.data.wafer_map import WM811K_LABELS, in_disk

LEGACY_GLOBALS = {
    "pandas.indexes.base": ("_new_Index", "Index"),
    "pandas.indexes.numeric": ("Int64Index",),
}
COLUMNS = ("waferMap", "dieSize", "lotName", "waferIndex", "trianTestLabel", "failureType")
_SPELLING = {name: spelling for spelling, name in WM811K_LABELS.items()}


@contextmanager
def _legacy_modules() -> Iterator[dict[str, object]]:
    """Stand-ins for old pandas modules, registered only while pickling."""
    stand_ins: dict[str, object] = {}
    added = []
    for module_name in ("pandas.indexes", *LEGACY_GLOBALS):
        module = types.ModuleType(module_name)
        for name in LEGACY_GLOBALS.get(module_name, ()):
            stand_in = type(name, (), {}) if name[0].isupper() else (lambda *a: None)
            stand_in.__module__, stand_in.__qualname__ = module_name, name
            setattr(module, name, stand_in)
            stand_ins[name] = stand_in
        assert module_name not in sys.modules
        sys.modules[module_name] = module
        added.append(module_name)
    internals = sys.modules["pandas.core.internals"]
    real_manager = internals.BlockManager
    internals.BlockManager = _LegacyManager  # pickled under the real class's name
    try:
        yield stand_ins
    finally:
        internals.BlockManager = real_manager
        for module_name in added:
            del sys.modules[module_name]


class _LegacyPickler(pickle.Pickler):
    """Writes DataFrames, BlockManagers and Indexes the way pandas < 0.20 pickled them."""

    def __init__(self, handle, stand_ins: dict[str, object]) -> None:
        super().__init__(handle, protocol=2)
        self.stand_ins = stand_ins

    def reducer_override(self, obj: object):
        if isinstance(obj, pd.DataFrame):
            state = {"_data": _LegacyManager(obj), "_typ": "dataframe", "_metadata": []}
            return copyreg.__newobj__, (pd.DataFrame,), state
        if isinstance(obj, _LegacyManager):  # named pandas.core.internals.BlockManager
            return copyreg.__newobj__, (_LegacyManager,), obj.state()
        if isinstance(obj, pd.Index):
            kind = "Int64Index" if obj.dtype == np.int64 else "Index"
            data = {"data": np.asarray(obj), "name": obj.name}
            return self.stand_ins["_new_Index"], (self.stand_ins[kind], data)
        return NotImplemented


class _LegacyManager:
    """A DataFrame's blocks as pandas < 0.20 stored them: float columns, then object columns."""

    __module__ = "pandas.core.internals"
    __qualname__ = "BlockManager"

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    def state(self) -> tuple:
        columns = list(self.frame.columns)
        floats = [i for i, c in enumerate(columns) if self.frame[c].dtype == np.float64]
        objects = [i for i in range(len(columns)) if i not in floats]
        blocks = []
        for locs, dtype in ((floats, np.float64), (objects, object)):
            values = np.empty((len(locs), len(self.frame)), dtype=dtype)
            for row, i in enumerate(locs):
                values[row, :] = self.frame.iloc[:, i].to_numpy()
            blocks.append({"values": values, "mgr_locs": np.array(locs, dtype=np.int64)})
        axes = [self.frame.columns, self.frame.index]
        items = [self.frame.columns[b["mgr_locs"]] for b in blocks]
        return (
            axes,
            [b["values"] for b in blocks],
            items,
            {"0.14.1": {"axes": axes, "blocks": blocks}},
        )


def die_map(rng: np.random.Generator, pattern: str, shape: tuple[int, int]) -> np.ndarray:
    """A WM-811K ``waferMap``: 0 off the wafer, 1 pass die, 2 fail die, on an (H, W) die grid."""
    side = max(shape)
    options = SimulationOptions(grid=side, defects_scale=0.05, background_density=0.5)
    square = simulate_wafer_map(rng, pattern, options)
    top, left = (side - shape[0]) // 2, (side - shape[1]) // 2
    rows, cols = np.arange(shape[0])[:, None], np.arange(shape[1])[None, :]
    image = np.where(in_disk(rows, cols, shape, side / 2.0), 1, 0).astype(np.uint8)
    fail = square.coords - [top, left]
    keep = (fail >= 0).all(1) & (fail[:, 0] < shape[0]) & (fail[:, 1] < shape[1])
    fail = fail[keep]
    fail = fail[image[fail[:, 0], fail[:, 1]] == 1]
    image[fail[:, 0], fail[:, 1]] = 2
    return image


def legacy_frame(
    n: int, seed: int, patterns: Sequence[str], unlabelled: int = 0, shapes=((26, 26), (25, 27))
) -> pd.DataFrame:
    """LSWMD's columns for ``n`` labelled simulated die maps (balanced patterns, the first two
    thirds ``Training``, the rest ``Test``) and ``unlabelled`` maps without labels."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n + unlabelled):
        labelled = i < n
        pattern = patterns[i % len(patterns)] if labelled else "none"
        image = die_map(rng, pattern, shapes[i % len(shapes)])
        split = ("Training" if i < 2 * n // 3 else "Test") if labelled else None
        rows.append(
            {
                "waferMap": image,
                "dieSize": float((image > 0).sum()),
                "lotName": f"lot{i // 25 + 1}",
                "waferIndex": float(i % 25 + 1),
                "trianTestLabel": np.array([[split]], dtype=object) if split else np.zeros((0, 0)),
                "failureType": np.array([[_SPELLING[pattern]]], dtype=object)
                if labelled
                else np.zeros((0, 0)),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def write_legacy_wm811k(path: Path, frame: pd.DataFrame) -> Path:
    """Pickle ``frame`` as pandas < 0.20 did (see the module docstring)."""
    with _legacy_modules() as stand_ins, open(path, "wb") as handle:
        _LegacyPickler(handle, stand_ins).dump(frame)
    return path


@pytest.fixture
def legacy_wm811k(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``legacy_wm811k(n, seed, patterns, unlabelled=0)`` -> an LSWMD-like pickle."""

    def make(n: int, seed: int, patterns: Sequence[str], unlabelled: int = 0) -> Path:
        frame = legacy_frame(n, seed, patterns, unlabelled)
        return write_legacy_wm811k(tmp_path / "LSWMD.pkl", frame)

    return make
