"""Evaluation of quality networks on held-out decoy sets, against simple baselines.

Methods: each network given (bundled name or checkpoint), the burial baseline (the residue's
buriedness feature as its score: buried residues are more often right) and VoroMQA
(``voronota-voromqa``, its own global score and smoothed residue scores). VoroMQA needs the decoys'
structure files (``protein-qa decoys --write-pdb DIR``: ``DIR/<native stem>_<decoy|native>.pdb``)
and the binary on PATH; without either it is reported as not run, with the reason.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.proteins.data.decoyset import DecoySet
from convsuite.proteins.data.structure import read_structure
from convsuite.proteins.data.voromqa import BINARY, residue_scores_of, run_voromqa
from convsuite.proteins.infer import load_network, predict_graphs
from convsuite.proteins.metrics import assessment_metrics

__all__ = ["decoy_structure_path", "evaluate_methods", "format_table", "voromqa_predictions"]

_COLUMNS = (
    ("residue_pearson_per_model", "res r/model"),
    ("residue_pearson_per_target", "res r/target"),
    ("residue_spearman_per_target", "res rho/target"),
    ("global_pearson", "global r"),
    ("global_pearson_per_target", "global r/target"),
    ("top1_zscore", "top1 z"),
    ("top1_loss", "top1 loss"),
)


def _label(name: str) -> str:
    return name.rsplit("/", 1)[-1].removesuffix(".safetensors")


def decoy_structure_path(structures: str | os.PathLike[str], name: str) -> Path:
    """The file ``protein-qa decoys --write-pdb`` wrote for decoy ``name`` (``<native>#<label>``)."""
    native, label = name.split("#", 1)
    return Path(structures) / f"{native.split('.')[0]}_{label}.pdb"


def voromqa_predictions(
    decoys: DecoySet, structures: str | os.PathLike[str], progress: bool | None = None
) -> tuple[list[np.ndarray], list[float]]:
    """VoroMQA's (R_i,) residue scores, aligned with each decoy's graph, and its global scores.

    Raises:
        InputError: the binary is not on PATH, a structure file is missing or fails, or its
            residues are not the graph's.
    """
    from rich.progress import track

    show = sys.stderr.isatty() if progress is None else progress
    residues, globals_ = [], []
    for name, graph in track(
        list(zip(decoys.names, decoys.graphs, strict=True)),
        description="voromqa",
        disable=not show,
        transient=True,
    ):
        path = decoy_structure_path(structures, name)
        if not path.exists():
            raise InputError(path, f"missing: the structure of decoy {name} (decoys --write-pdb)")
        protein = read_structure(path)
        if protein.num_residues != graph.num_residues:
            raise InputError(
                path, f"has {protein.num_residues} residues, the decoy set {graph.num_residues}"
            )
        scores = run_voromqa(path)
        residues.append(residue_scores_of(scores, protein))
        globals_.append(scores.global_score)
    return residues, globals_


def evaluate_methods(
    decoys: DecoySet,
    weights: Sequence[str],
    device: str = "cpu",
    structures: str | os.PathLike[str] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, list[np.ndarray]]]:
    """Metrics (see :func:`~convsuite.proteins.metrics.assessment_metrics`) of every method.

    Args:
        structures: folder of the decoys' PDB files (``protein-qa decoys --write-pdb``), for
            VoroMQA; None: VoroMQA not run.

    Returns:
        method -> metrics (``"voromqa"`` -> a note when not run), and method -> per-residue
        predictions of each model.
    """
    predictions: dict[str, list[np.ndarray]] = {}
    for name in weights:
        net = load_network(name, device)
        predictions[_label(name)] = predict_graphs(net, decoys.graphs, device=device)
    predictions["burial"] = [g.features[:, 21].astype(float) for g in decoys.graphs]
    results: dict[str, dict] = {
        method: assessment_metrics(values, decoys.targets, decoys.natives)
        for method, values in predictions.items()
    }
    if structures is None:
        note = "not run: no structure files (protein-qa decoys --write-pdb, evaluate --structures)"
        results["voromqa"] = {"note": note}  # type: ignore[dict-item]
    elif shutil.which(BINARY) is None:
        results["voromqa"] = {"note": f"not run: {BINARY} is not on PATH"}  # type: ignore[dict-item]
    else:
        residues, globals_ = voromqa_predictions(decoys, structures)
        predictions["voromqa"] = residues
        results["voromqa"] = assessment_metrics(
            residues, decoys.targets, decoys.natives, global_predicted=globals_
        )
    return results, predictions


def format_table(results: dict[str, dict[str, float]]) -> str:
    """The metrics as an aligned text table, one row per method."""
    head = f"{'method':<16}" + "".join(f"{title:>16}" for _, title in _COLUMNS)
    lines = [head]
    for method, metrics in results.items():
        if "note" in metrics:
            lines.append(f"{method:<16}{metrics['note']}")
            continue
        lines.append(f"{method:<16}" + "".join(f"{metrics[key]:>16.3f}" for key, _ in _COLUMNS))
    first = next((m for m in results.values() if "models" in m), None)
    if first:
        lines.append(f"({int(first['models'])} models of {int(first['targets'])} targets)")
    return "\n".join(lines)
