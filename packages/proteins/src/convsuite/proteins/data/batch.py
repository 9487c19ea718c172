"""Residue graphs as torch tensors, several graphs batched as one block-diagonal graph."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from convsuite.proteins.data.features import ResidueGraph

__all__ = ["GraphBatch", "collate"]


@dataclass
class GraphBatch:
    """Graphs stacked along the residue axis.

    Attributes:
        features: (N, 23) float32.
        backbone: (N, 3, 3) float64 N, CA, C, Å.
        edges: (2, E) int64 (indices into the N residues of the batch).
        edge_weight: (E,) float32.
        graph: (N,) int64, which graph each residue belongs to.
        num_graphs: G.
        target: (N,) float32 per-residue targets (lDDT) or None.
    """

    features: torch.Tensor
    backbone: torch.Tensor
    edges: torch.Tensor
    edge_weight: torch.Tensor
    graph: torch.Tensor
    num_graphs: int
    target: torch.Tensor | None = None

    def to(self, device: str | torch.device) -> GraphBatch:
        move = {k: v.to(device) for k, v in vars(self).items() if isinstance(v, torch.Tensor)}
        return GraphBatch(**{**vars(self), **move})

    def global_mean(self, values: torch.Tensor) -> torch.Tensor:
        """(G,) mean of per-residue ``values`` (N,) over each graph."""
        sums = torch.zeros(self.num_graphs, dtype=values.dtype, device=values.device)
        counts = torch.bincount(self.graph, minlength=self.num_graphs).to(values.dtype)
        return sums.index_add_(0, self.graph, values) / counts.clamp_min(1)


def collate(
    graphs: Sequence[ResidueGraph], targets: Sequence[np.ndarray] | None = None
) -> GraphBatch:
    """One :class:`GraphBatch` of ``graphs`` (and their (R,) targets; NaN targets are kept)."""
    offsets = np.cumsum([0, *(g.num_residues for g in graphs)])
    return GraphBatch(
        features=torch.from_numpy(np.concatenate([g.features for g in graphs])),
        backbone=torch.from_numpy(np.concatenate([g.backbone for g in graphs])),
        edges=torch.from_numpy(
            np.concatenate([g.edges + o for g, o in zip(graphs, offsets, strict=False)], axis=1)
        ),
        edge_weight=torch.from_numpy(np.concatenate([g.edge_weight for g in graphs])),
        graph=torch.from_numpy(np.repeat(np.arange(len(graphs)), [g.num_residues for g in graphs])),
        num_graphs=len(graphs),
        target=None
        if targets is None
        else torch.from_numpy(np.concatenate(targets).astype(np.float32)),
    )
