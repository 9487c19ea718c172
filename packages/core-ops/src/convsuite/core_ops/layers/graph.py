"""Spectral graph convolution on a fixed graph, and fixed node resampling (graph pooling).

``ChebConv`` follows Defferrard, Bresson & Vandergheynst, "Convolutional neural networks on graphs
with fast localized spectral filtering", NeurIPS 2016, with the normalisation of torch_geometric's
``ChebConv`` (symmetric Laplacian, lambda_max = 2), which the tests use as the oracle. Unlike
torch_geometric, the graph is fixed at construction (mesh and contour models decode onto one
template graph), so the scaled Laplacian is a buffer and each Chebyshev step is one batched matmul
instead of a scatter over edges: at the few hundred nodes of a contour or mesh template that is the
fast path on a CPU.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def scaled_laplacian(adjacency: torch.Tensor) -> torch.Tensor:
    """The rescaled Laplacian ``2 L / lambda_max - I`` with ``L = I - D^-1/2 A D^-1/2``, lambda_max = 2.

    Args:
        adjacency: (N, N) symmetric, non-negative edge weights, zero diagonal.

    Returns:
        (N, N) ``-D^-1/2 A D^-1/2``; rows of isolated nodes are zero.
    """
    if adjacency.dim() != 2 or adjacency.shape[0] != adjacency.shape[1]:
        raise ValueError(f"adjacency must be square (N, N), got {tuple(adjacency.shape)}")
    if not torch.equal(adjacency, adjacency.T):
        raise ValueError("adjacency must be symmetric (an undirected graph)")
    degree = adjacency.sum(dim=1)
    inv_sqrt = torch.where(degree > 0, degree.rsqrt(), torch.zeros_like(degree))
    return -(inv_sqrt[:, None] * adjacency * inv_sqrt[None, :])


class ChebConv(nn.Module):
    """Chebyshev spectral graph convolution of order K on a fixed graph.

    ``y = sum_{k<K} T_k(L~) x W_k + b`` with ``T_0 = I``, ``T_1 = L~``,
    ``T_k = 2 L~ T_{k-1} - T_{k-2}``; each output node sees its (K-1)-hop neighbourhood.

    Args:
        in_channels: C_in node features.
        out_channels: C_out node features.
        k: K, the polynomial order (K = 1 is a per-node linear map).
        adjacency: (N, N) symmetric adjacency of the graph the layer works on.
        bias: add a learned bias.

    Shapes:
        input (B, N, C_in) or (N, C_in) -> output (B, N, C_out) or (N, C_out).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        k: int,
        adjacency: torch.Tensor,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.in_channels, self.out_channels, self.k = in_channels, out_channels, k
        self.register_buffer("laplacian", scaled_laplacian(adjacency.float()))
        self.weight = nn.Parameter(torch.empty(k, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    @property
    def num_nodes(self) -> int:
        return self.laplacian.shape[0]

    def reset_parameters(self) -> None:
        """Glorot-uniform weights per order and zero bias, as torch_geometric."""
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] != self.num_nodes or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"expected (..., {self.num_nodes}, {self.in_channels}) node features, "
                f"got {tuple(x.shape)}"
            )
        laplacian = self.laplacian.to(x.dtype)
        terms = [x]
        if self.k > 1:
            terms.append(torch.matmul(laplacian, x))
        for _ in range(2, self.k):
            terms.append(2 * torch.matmul(laplacian, terms[-1]) - terms[-2])
        stacked = torch.cat(terms, dim=-1)
        out = torch.matmul(stacked, self.weight.reshape(-1, self.out_channels))
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, k={self.k}, num_nodes={self.num_nodes}"


class NodeResample(nn.Module):
    """A fixed linear map between two node sets: graph pooling (N_in -> N_out < N_in) or unpooling.

    As the down- and up-sampling matrices of COMA (Ranjan et al., ECCV 2018): each output node is a
    fixed weighted sum of input nodes.

    Args:
        matrix: (N_out, N_in) resampling weights.

    Shapes:
        input (B, N_in, C) -> output (B, N_out, C).
    """

    def __init__(self, matrix: torch.Tensor) -> None:
        super().__init__()
        if matrix.dim() != 2:
            raise ValueError(f"matrix must be (N_out, N_in), got {tuple(matrix.shape)}")
        self.register_buffer("matrix", matrix.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.matmul(self.matrix.to(x.dtype), x)

    def extra_repr(self) -> str:
        n_out, n_in = self.matrix.shape
        return f"{n_in} -> {n_out} nodes"
