"""Decoy sets: residue graphs of relaxed decoys with their per-residue lDDT against the native.

A set is what training and evaluation read; it is built once from native structures
(:func:`build_decoy_set`) and kept as one ``.npz`` of concatenated arrays (no pickles).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_path
from convsuite.proteins.data.decoys import make_decoys
from convsuite.proteins.data.features import ResidueGraph, build_graph
from convsuite.proteins.data.lddt import residue_lddt
from convsuite.proteins.data.structure import read_structure, write_structure

__all__ = ["DecoySet", "build_decoy_set", "load_decoy_set", "save_decoy_set"]


@dataclass
class DecoySet:
    """Graphs, per-residue targets and names of decoys.

    Attributes:
        graphs: one :class:`ResidueGraph` per decoy.
        targets: (R_i,) per-residue lDDT of each decoy.
        names: decoy names (``<native>#decoy<i>``, or ``<native>#native``).
        natives: the native (target) each decoy belongs to, its file name.
        kinds: perturbation of each decoy (``noise``, ``hinge+register``, ``native``).
    """

    graphs: list[ResidueGraph]
    targets: list[np.ndarray]
    names: list[str]
    natives: list[str]
    kinds: list[str]

    def __len__(self) -> int:
        return len(self.graphs)

    def subset(self, keep: Sequence[int]) -> DecoySet:
        return DecoySet(
            *(
                [values[i] for i in keep]
                for values in (self.graphs, self.targets, self.names, self.natives, self.kinds)
            )
        )


def build_decoy_set(
    natives: Sequence[str | os.PathLike[str]],
    decoys_per_native: int,
    seed: int,
    include_natives: bool = False,
    relaxed: bool = True,
    progress: bool | None = None,
    write_pdb: str | os.PathLike[str] | None = None,
) -> DecoySet:
    """Decoys of each native (see :func:`~convsuite.proteins.data.decoys.make_decoys`), their
    graphs and per-residue lDDT.

    Args:
        natives: PDB/mmCIF files of native structures.
        decoys_per_native: decoys made from each.
        seed: native ``k`` uses ``seed + k``; same seed, same set.
        include_natives: add each native itself (lDDT 1 everywhere) to the set.
        relaxed: relax the decoys with OpenMM (restrained minimization).
        progress: show a rich progress bar (default: when stderr is a terminal).
        write_pdb: also write each model as ``<folder>/<native stem>_<decoy|native>.pdb``.
    """
    from rich.progress import track

    show = sys.stderr.isatty() if progress is None else progress
    out = DecoySet([], [], [], [], [])
    for k, path in enumerate(
        track(list(natives), description="decoys", disable=not show, transient=True)
    ):
        native = read_structure(path)
        name = Path(path).name
        decoys = make_decoys(native, decoys_per_native, seed + k, relaxed=relaxed)
        items = [(native, "native")] if include_natives else []
        items += [(d.protein, d.kind) for d in decoys]
        for i, (protein, kind) in enumerate(items):
            label = "native" if kind == "native" else f"decoy{i}"
            out.graphs.append(build_graph(protein))
            out.targets.append(np.nan_to_num(residue_lddt(protein, native), nan=1.0))
            out.names.append(f"{name}#{label}")
            if write_pdb is not None:
                stem = name.split(".")[0]
                write_structure(protein, Path(write_pdb) / f"{stem}_{label}.pdb")
            out.natives.append(name)
            out.kinds.append(kind)
    return out


def save_decoy_set(decoys: DecoySet, path: str | os.PathLike[str]) -> Path:
    """Write ``decoys`` as one ``.npz`` (atomically)."""
    path = Path(path)
    sizes = np.array([g.num_residues for g in decoys.graphs])
    edge_counts = np.array([g.edges.shape[1] for g in decoys.graphs])
    arrays = {
        "sizes": sizes,
        "edge_counts": edge_counts,
        "features": np.concatenate([g.features for g in decoys.graphs]),
        "backbone": np.concatenate([g.backbone for g in decoys.graphs]),
        "edges": np.concatenate([g.edges for g in decoys.graphs], axis=1),
        "edge_weight": np.concatenate([g.edge_weight for g in decoys.graphs]),
        "targets": np.concatenate(decoys.targets),
        "names": np.array(decoys.names),
        "natives": np.array(decoys.natives),
        "kinds": np.array(decoys.kinds),
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def load_decoy_set(path: str | os.PathLike[str]) -> DecoySet:
    """Read a set written by :func:`save_decoy_set`.

    Raises:
        InputError: not such a file.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise InputError(path, f"is not a decoy set .npz ({error})") from None
    needed = {"sizes", "edge_counts", "features", "backbone", "edges", "edge_weight", "targets"}
    if not needed <= set(arrays):
        raise InputError(
            path, f"is not a decoy set: lacks {', '.join(sorted(needed - set(arrays)))}"
        )
    residue_splits = np.cumsum(arrays["sizes"])[:-1]
    edge_splits = np.cumsum(arrays["edge_counts"])[:-1]
    graphs = [
        ResidueGraph(f, b, e, w)
        for f, b, e, w in zip(
            np.split(arrays["features"], residue_splits),
            np.split(arrays["backbone"], residue_splits),
            np.split(arrays["edges"], edge_splits, axis=1),
            np.split(arrays["edge_weight"], edge_splits),
            strict=True,
        )
    ]
    return DecoySet(
        graphs,
        np.split(arrays["targets"], residue_splits),
        arrays["names"].tolist(),
        arrays["natives"].tolist(),
        arrays["kinds"].tolist(),
    )
