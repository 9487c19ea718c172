"""The landmark graph of HybridGNet: one closed ring per organ, halved once for pooling.

After Gaggion et al., IEEE TMI 2022, Sec. II-B, and the authors' graph construction: each organ
contour is a cycle of N landmarks (no edges between organs); pooling keeps every pair of neighbours
as their mean (ceil(N/2) nodes), unpooling puts the kept nodes back and interpolates between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from convsuite.medseg.data.landmarks import ORGAN_SIZES


def ring_adjacency(n: int) -> torch.Tensor:
    """(n, n) adjacency of a closed contour: node i joined to i-1 and i+1 (mod n)."""
    adjacency = torch.zeros(n, n)
    index = torch.arange(n)
    adjacency[index, (index + 1) % n] = 1.0
    adjacency[index, (index - 1) % n] = 1.0
    return adjacency


def ring_downsample(n: int) -> torch.Tensor:
    """(ceil(n/2), n): pooled node i is the mean of nodes 2i and 2i+1 (node 2i alone at an odd end)."""
    pooled = (n + 1) // 2
    matrix = torch.zeros(pooled, n)
    for i in range(pooled):
        if 2 * i + 1 == n:
            matrix[i, 2 * i] = 1.0
        else:
            matrix[i, 2 * i] = matrix[i, 2 * i + 1] = 0.5
    return matrix


def ring_upsample(n: int) -> torch.Tensor:
    """(n, ceil(n/2)): even nodes copy their pooled node, odd nodes average the two around them."""
    pooled = (n + 1) // 2
    matrix = torch.zeros(n, pooled)
    for i in range(n):
        if i % 2 == 0 or i // 2 + 1 == pooled:
            matrix[i, i // 2] = 1.0
        else:
            matrix[i, i // 2] = matrix[i, i // 2 + 1] = 0.5
    return matrix


def _block_diagonal(blocks: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.block_diag(*blocks)


@dataclass(frozen=True)
class ContourGraph:
    """The organ rings of one landmark template, at full and pooled resolution.

    Attributes:
        organs: organ codes in node order, e.g. ("RL", "LL", "H").
        sizes: landmarks per organ (RL 44, LL 50, H 26, RCLA/LCLA 23).
        adjacency: (N, N) block-diagonal ring adjacency, N = sum(sizes).
        pooled_adjacency: (M, M), M = sum(ceil(size / 2)).
        downsample: (M, N) pooling matrix.
        upsample: (N, M) unpooling matrix.
    """

    organs: tuple[str, ...]
    sizes: tuple[int, ...]
    adjacency: torch.Tensor
    pooled_adjacency: torch.Tensor
    downsample: torch.Tensor
    upsample: torch.Tensor

    @classmethod
    def for_organs(cls, organs: Sequence[str]) -> ContourGraph:
        unknown = [organ for organ in organs if organ not in ORGAN_SIZES]
        if unknown:
            raise ValueError(f"unknown organs {unknown}; known: {list(ORGAN_SIZES)}")
        sizes = tuple(ORGAN_SIZES[organ] for organ in organs)
        return cls(
            organs=tuple(organs),
            sizes=sizes,
            adjacency=_block_diagonal([ring_adjacency(n) for n in sizes]),
            pooled_adjacency=_block_diagonal([ring_adjacency((n + 1) // 2) for n in sizes]),
            downsample=_block_diagonal([ring_downsample(n) for n in sizes]),
            upsample=_block_diagonal([ring_upsample(n) for n in sizes]),
        )

    @property
    def num_nodes(self) -> int:
        return sum(self.sizes)

    @property
    def num_pooled_nodes(self) -> int:
        return self.downsample.shape[0]

    def split(self, nodes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split (..., N, C) node values into one (..., size, C) tensor per organ."""
        return dict(zip(self.organs, torch.split(nodes, self.sizes, dim=-2), strict=True))
