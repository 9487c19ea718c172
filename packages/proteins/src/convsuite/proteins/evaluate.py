"""Evaluation of quality networks on held-out decoy sets, against simple baselines.

Methods: each network given (bundled name or checkpoint), and the burial baseline (the residue's
buriedness feature as its score: buried residues are more often right). VoroMQA
(``voronota-voromqa``) needs the binary and the structure files; it is reported as not run when
the binary is not on PATH (the case on the machines this package is built on).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import numpy as np

from convsuite.proteins.data.decoyset import DecoySet
from convsuite.proteins.infer import load_network, predict_graphs
from convsuite.proteins.metrics import assessment_metrics

__all__ = ["evaluate_methods", "format_table"]

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


def evaluate_methods(
    decoys: DecoySet, weights: Sequence[str], device: str = "cpu"
) -> tuple[dict[str, dict[str, float]], dict[str, list[np.ndarray]]]:
    """Metrics (see :func:`~convsuite.proteins.metrics.assessment_metrics`) of every method.

    Returns:
        method -> metrics (plus ``"voromqa"`` -> a note when not run), and method -> per-residue
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
    if shutil.which("voronota-voromqa") is None:
        results["voromqa"] = {"note": "not run: voronota-voromqa is not on PATH"}  # type: ignore[dict-item]
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
