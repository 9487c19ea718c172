"""``LSWMD.pkl`` -> our map files, once: the only place a WM-811K pickle is unpickled.

:func:`convert_wm811k` reads the pickle (:func:`~convsuite.semicon.data.readers.iter_wm811k`:
unpickling runs code from the file, so the caller must say it trusts the file) and writes every
map as a ``.npz`` defect list (fail-die centres in mm, the die grid's ``grid_rows`` x
``grid_cols``, diameter, pitch, label) that every other command reads, in one folder per
``trianTestLabel``::

    OUT/train/<lot>_w<wafer>.npz      trianTestLabel "Training"
    OUT/test/...                      "Test"
    OUT/unlabelled/...                no failureType (only with labelled_only=False)
    OUT/index.csv                     one row per map: file, name, label, failureType, lotName,
                                      waferIndex, trianTestLabel, dieSize, grid_rows, grid_cols,
                                      fail_dies, row (the DataFrame's index)

A labelled map without a split goes to ``OUT/other/``. Pass dies (value 1) are not kept: the maps
are the fail dies (value 2) on the die grid.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_write
from convsuite.semicon.data.readers import WM811KRecord, iter_wm811k, write_wafer_npz

__all__ = ["INDEX_COLUMNS", "SPLIT_FOLDERS", "convert_wm811k"]

SPLIT_FOLDERS = {"Training": "train", "Test": "test", "": "unlabelled"}
"""``trianTestLabel`` -> output folder (labelled rows without a split go to ``other``)."""

INDEX_COLUMNS = (
    "file",
    "name",
    "label",
    "failureType",
    "lotName",
    "waferIndex",
    "trianTestLabel",
    "dieSize",
    "grid_rows",
    "grid_cols",
    "fail_dies",
    "row",
)


def _folder(record: WM811KRecord) -> str:
    if record.map.label is None:
        return SPLIT_FOLDERS[""]
    return SPLIT_FOLDERS.get(record.split, "other") if record.split else "other"


def convert_wm811k(
    pickle_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    trust_pickle: bool = False,
    labelled_only: bool = True,
    limit: int | None = None,
    on_map: Callable[[WM811KRecord], None] | None = None,
) -> dict[str, int]:
    """Convert a WM-811K pickle into ``.npz`` maps and ``index.csv`` (see the module docstring).

    Args:
        pickle_path: ``LSWMD.pkl`` or a pickle of the same structure.
        out_dir: output folder (created).
        trust_pickle: must be True: unpickling runs code from the file.
        labelled_only: skip rows without a ``failureType`` (638,507 of LSWMD's 811,457).
        limit: stop after this many maps.
        on_map: called after each map is written (progress).

    Returns:
        Maps written per output folder.

    Raises:
        InputError: ``trust_pickle`` not given, or the pickle is not WM-811K-like (see
            :func:`~convsuite.semicon.data.readers.iter_wm811k`).
    """
    pickle_path = Path(pickle_path)
    if not trust_pickle:
        raise InputError(
            pickle_path,
            "unpickling runs code from the file; convert it only if you trust it (--trust-pickle)",
        )
    out_dir = Path(out_dir)
    counts: Counter[str] = Counter()
    rows: list[dict[str, object]] = []
    used: set[str] = set()
    for record in iter_wm811k(pickle_path, labelled_only=labelled_only, limit=limit):
        folder = _folder(record)
        stem = record.map.name
        if stem in used:  # lot and wafer seen before: the row index keeps the file apart
            stem = f"{stem}_row{record.row}"
        used.add(stem)
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        relative = f"{folder}/{stem}.npz"
        write_wafer_npz(out_dir / relative, record.map)
        height, width = record.map.grid_shape
        rows.append(
            {
                "file": relative,
                "name": stem,
                "label": record.map.label or "",
                "failureType": record.failure_type,
                "lotName": record.lot,
                "waferIndex": "" if record.wafer_index is None else record.wafer_index,
                "trianTestLabel": record.split,
                "dieSize": "" if record.die_size != record.die_size else int(record.die_size),
                "grid_rows": height,
                "grid_cols": width,
                "fail_dies": record.map.n_defects,
                "row": record.row,
            }
        )
        counts[folder] += 1
        if on_map is not None:
            on_map(record)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(out_dir / "index.csv") as handle:
        writer = csv.DictWriter(handle, fieldnames=INDEX_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return dict(counts)
