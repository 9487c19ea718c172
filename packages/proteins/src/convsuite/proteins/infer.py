"""The scoring pipeline: structure file -> residue graph -> network -> per-residue and global scores.

from convsuite.proteins import ModelQualityAssessor

assessor = ModelQualityAssessor.from_pretrained()       # bundled S-GCN
result = assessor.score("model.pdb")
result.global_score, result.scores                      # mean, (R,) in [0, 1], 1 = correct
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import resolve_weights
from convsuite.core_ops.io import read_card
from convsuite.proteins.data.batch import collate
from convsuite.proteins.data.features import ResidueGraph, build_graph
from convsuite.proteins.data.structure import Protein, read_structure
from convsuite.proteins.model import GCNQualityNet, SGCNQualityNet

__all__ = ["ModelQualityAssessor", "QualityScore", "load_network", "predict_graphs"]

_NETWORKS = {cls.__name__: cls for cls in (SGCNQualityNet, GCNQualityNet)}


@dataclass(frozen=True)
class QualityScore:
    """Scores of one structure.

    Attributes:
        protein: the residues scored (residues missing N, CA or C are not).
        scores: (R,) predicted per-residue quality in [0, 1] (1 = correct; trained on lDDT).
        global_score: mean of ``scores``.
    """

    protein: Protein
    scores: np.ndarray

    @property
    def global_score(self) -> float:
        return float(self.scores.mean())

    @property
    def num_residues(self) -> int:
        return self.protein.num_residues

    def rows(self) -> list[tuple[str, str, str, float]]:
        """(chain, resnum with insertion code, resname, score) per residue, for a CSV."""
        p = self.protein
        return [
            (str(c), f"{n}{i}", str(r), float(s))
            for c, n, i, r, s in zip(
                p.chain, p.resnum, p.icode, p.resname, self.scores, strict=True
            )
        ]


def load_network(
    name_or_path: str | os.PathLike[str] | None = None, device: str = "cpu"
) -> SGCNQualityNet | GCNQualityNet:
    """A bundled network by name (``sgcn_decoys``, ``gcn_decoys``) or a checkpoint from
    ``protein-qa train``; the card says which architecture. None: the bundled S-GCN.

    Raises:
        InputError: no such name or file, or a checkpoint of another architecture.
    """
    path = resolve_weights(SGCNQualityNet, name_or_path)
    architecture = read_card(path).architecture
    if architecture not in _NETWORKS:
        raise InputError(path, f"holds a {architecture}, not a protein quality network")
    return _NETWORKS[architecture].from_pretrained(path, device=device)


@torch.no_grad()
def predict_graphs(
    net: torch.nn.Module, graphs: Sequence[ResidueGraph], batch_size: int = 16, device: str = "cpu"
) -> list[np.ndarray]:
    """Per-residue scores (R_i,) of each graph, in eval mode, ``batch_size`` graphs at a time."""
    was_training = net.training
    net.eval()
    out: list[np.ndarray] = []
    for start in range(0, len(graphs), batch_size):
        chunk = graphs[start : start + batch_size]
        scores = net(collate(chunk).to(device)).float().cpu().numpy()
        out.extend(np.split(scores, np.cumsum([g.num_residues for g in chunk])[:-1]))
    net.train(was_training)
    return out


class ModelQualityAssessor:
    """Scores protein structure models with a quality network (S-GCN by default).

    Args:
        net: an :class:`SGCNQualityNet` or :class:`GCNQualityNet`.
        contacts: ``"atoms"`` (pure Python) or ``"voronota"`` (needs the binary on PATH).
        device: torch device.
    """

    def __init__(
        self,
        net: SGCNQualityNet | GCNQualityNet,
        contacts: Literal["atoms", "voronota"] = "atoms",
        device: str = "cpu",
    ) -> None:
        self.net = net.to(device).eval()
        self.contacts = contacts
        self.device = device

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        contacts: Literal["atoms", "voronota"] = "atoms",
    ) -> ModelQualityAssessor:
        """The assessor around bundled or trained weights (see :func:`load_network`)."""
        return cls(load_network(name_or_path, device), contacts, device)

    def _protein(self, structure: str | os.PathLike[str] | Protein) -> Protein:
        return structure if isinstance(structure, Protein) else read_structure(Path(structure))

    def score(self, structure: str | os.PathLike[str] | Protein) -> QualityScore:
        """Per-residue and global scores of one PDB/mmCIF file or :class:`Protein`.

        Raises:
            InputError: not a structure, no protein residues, no complete backbone.
        """
        return next(self.score_many([structure]))

    def score_many(
        self, structures: Iterable[str | os.PathLike[str] | Protein], batch_size: int = 8
    ) -> Iterator[QualityScore]:
        """Scores of each structure, read and scored ``batch_size`` at a time (streamed)."""
        iterator = iter(structures)
        while chunk := list(islice(iterator, batch_size)):
            proteins = [self._protein(s) for s in chunk]
            graphs = [build_graph(p, self.contacts) for p in proteins]
            scores = predict_graphs(self.net, graphs, batch_size, self.device)
            yield from (QualityScore(p, s) for p, s in zip(proteins, scores, strict=True))
