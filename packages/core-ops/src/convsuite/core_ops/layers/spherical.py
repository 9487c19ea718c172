"""Spherical graph convolution on molecular graphs (S-GCN).

After Igashov, Pavlichenko & Grudinin, "Spherical convolutions on molecular graphs for protein model
quality assessment", Mach. Learn.: Sci. Technol. 2 (2021) 045005, eq. (3) and section 2.3:

    H' = act(H W_0 + sum_k S_k H W_k + b),

where ``k = (l, m)`` runs over the real spherical harmonics ``Y_lm`` with ``l < L`` (``L**2`` of
them; L = 5 gives 25) and ``S_k[i, j] = w_ij Y_lm(u_ij)`` for each neighbour ``j`` of node ``i``:
``u_ij`` is the unit direction from ``i`` to ``j`` expressed in ``i``'s local frame, and ``w_ij`` an
optional edge weight (the contact area of S-GCN_r, 1 otherwise). Local frames come from three
points per node (for residues: N, C-alpha, C; origin at C-alpha), so the filters turn with the
molecule and the output is invariant to rotating and translating the whole structure.

Two paths compute ``S_k H`` for all k at once, then one dense matmul with the ``(K*C_in, C_out)``
weights: ``"gather"`` (default) keeps ``S`` as padded neighbour lists, a gather and a batched
matmul; ``"sparse"`` stacks the ``S_k`` into one sparse ``(K*N, N)`` matrix for ``torch.sparse.mm``
(4-20x slower on a CPU at protein sizes: torch's COO/CSR kernels). :func:`spherical_conv_reference`
is the slow, obvious dense version the tests and the benchmark compare against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import torch
from torch import nn

__all__ = [
    "SphericalGraph",
    "SphericalGraphConv",
    "local_frames",
    "real_spherical_harmonics",
    "spherical_adjacency",
    "spherical_conv_reference",
]


def real_spherical_harmonics(directions: torch.Tensor, order: int) -> torch.Tensor:
    """Real spherical harmonics ``Y_lm`` (orthonormal on the sphere) of unit vectors, ``l < order``.

    Convention (as Wikipedia's "real spherical harmonics", the one the paper uses): from the complex
    ``Y_l^m`` with the Condon-Shortley phase, ``Y_l0 = Y_l^0``, ``Y_lm = sqrt(2) (-1)^m Re Y_l^m``
    and ``Y_l,-m = sqrt(2) (-1)^m Im Y_l^m`` for ``m > 0``. Computed as polynomials in (x, y, z),
    so there is no singularity at the poles and gradients are exact.

    Args:
        directions: (E, 3) unit vectors (x, y, z); normalised here if they are not.
        order: L; the result has L**2 columns.

    Returns:
        (E, L**2), column ``l*l + l + m`` holds ``Y_lm``.
    """
    if directions.dim() != 2 or directions.shape[-1] != 3:
        raise ValueError(f"directions must be (E, 3), got {tuple(directions.shape)}")
    if order < 1:
        raise ValueError(f"order L must be >= 1, got {order}")
    u = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x, y, z = u.unbind(-1)
    columns: list[torch.Tensor | None] = [None] * (order * order)
    # (x + i y)^m = sin^m(theta) e^{i m phi}, built by repeated complex multiplication.
    re, im = torch.ones_like(x), torch.zeros_like(x)
    for m in range(order):
        if m > 0:
            re, im = re * x - im * y, re * y + im * x
        # Q_l^m(z) = P_l^m(z) / sin^m(theta) without the Condon-Shortley phase.
        q_prev = torch.full_like(z, float(math.prod(range(1, 2 * m, 2))))  # (2m-1)!!
        q = q_prev
        for l in range(m, order):
            if l == m + 1:
                q_prev, q = q, z * (2 * m + 1) * q
            elif l > m + 1:
                q_prev, q = q, ((2 * l - 1) * z * q - (l + m - 1) * q_prev) / (l - m)
            norm = math.sqrt(
                (2 * l + 1) / (4 * math.pi) * math.factorial(l - m) / math.factorial(l + m)
            )
            if m == 0:
                columns[l * l + l] = norm * q
            else:
                columns[l * l + l + m] = math.sqrt(2.0) * norm * q * re
                columns[l * l + l - m] = math.sqrt(2.0) * norm * q * im
    return torch.stack(columns, dim=-1)  # type: ignore[arg-type]


def local_frames(n: torch.Tensor, ca: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Right-handed orthonormal frame of each residue from its backbone N, C-alpha and C.

    ``e1`` points from C-alpha to N, ``e3`` is normal to the N-CA-C plane (``e1 x (C - CA)``),
    ``e2 = e3 x e1``.

    Args:
        n, ca, c: (N, 3) coordinates, Å.

    Returns:
        (N, 3, 3) rotation matrices whose *columns* are e1, e2, e3 (so ``R.T @ v`` expresses a
        vector ``v`` in the local frame), in the input's dtype (computed in float64).
    """
    dtype = ca.dtype
    n, ca, c = n.double(), ca.double(), c.double()  # see spherical_adjacency
    e1 = n - ca
    e1 = e1 / e1.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    e3 = torch.linalg.cross(e1, c - ca, dim=-1)
    e3 = e3 / e3.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    e2 = torch.linalg.cross(e3, e1, dim=-1)
    return torch.stack([e1, e2, e3], dim=-1).to(dtype)


@dataclass
class SphericalGraph:
    """The filters' support: the ``S_k`` of a graph (or a batch of graphs, block-diagonal).

    Kept as padded neighbour lists (each row of ``S`` has at most D entries), which makes
    ``S_k H`` one gather and one batched matmul; :attr:`stacked` gives the same ``S`` as a sparse
    matrix.

    Attributes:
        neighbours: (N, D) int64, neighbour ``d`` of node ``i`` (padding points at node 0).
        harmonics: (N, D, K) ``w_ij Y_k(u_ij)`` of those neighbours; zero on padding.
        order: L (K = L**2).
    """

    neighbours: torch.Tensor
    harmonics: torch.Tensor
    order: int

    @property
    def num_nodes(self) -> int:
        return self.neighbours.shape[0]

    @property
    def num_kernels(self) -> int:
        return self.order * self.order

    @cached_property
    def stacked(self) -> torch.Tensor:
        """Sparse COO ``(K*N, N)``: rows ``k*N + i`` hold ``S_k[i, :]`` (coalesced; built once, on
        first use, and shared by every layer given this graph)."""
        n, d, k = self.harmonics.shape
        rows = (
            torch.arange(k, device=self.neighbours.device)[None, None, :] * n
            + torch.arange(n, device=self.neighbours.device)[:, None, None]
        )
        cols = self.neighbours[:, :, None].expand(n, d, k)
        return torch.sparse_coo_tensor(
            torch.stack([rows.expand(n, d, k).reshape(-1), cols.reshape(-1)]),
            self.harmonics.reshape(-1),
            (k * n, n),
            check_invariants=False,
        ).coalesce()

    def to_dense(self) -> torch.Tensor:
        """(K, N, N) dense ``S`` (for references and tests)."""
        n, k = self.num_nodes, self.num_kernels
        dense = torch.zeros(n, n, k, dtype=self.harmonics.dtype, device=self.harmonics.device)
        rows = torch.arange(n, device=dense.device)[:, None].expand_as(self.neighbours)
        dense.index_put_((rows, self.neighbours), self.harmonics, accumulate=True)
        return dense.permute(2, 0, 1)

    def to(self, device: str | torch.device) -> SphericalGraph:
        return SphericalGraph(self.neighbours.to(device), self.harmonics.to(device), self.order)


def spherical_adjacency(
    positions: torch.Tensor,
    frames: torch.Tensor,
    edge_index: torch.Tensor,
    order: int,
    edge_weight: torch.Tensor | None = None,
) -> SphericalGraph:
    """The ``S_k`` of a graph: ``S_k[i, j] = w_ij Y_k(R_i^T (p_j - p_i) / |p_j - p_i|)``.

    Args:
        positions: (N, 3) node positions (C-alpha), Å.
        frames: (N, 3, 3) local frames from :func:`local_frames`.
        edge_index: (2, E) int64, rows (centre i, neighbour j), each pair at most once;
            self-loops are dropped (the centre's own term is ``H W_0``).
        order: L.
        edge_weight: (E,) weights ``w_ij`` (contact areas for S-GCN_r) or None for 1.

    Returns:
        the :class:`SphericalGraph`, in the positions' dtype.
    """
    centre, neighbour = edge_index
    keep = centre != neighbour
    centre, neighbour = centre[keep], neighbour[keep]
    # Geometry in float64 whatever the input: float32 differences of coordinates ~100 Å away from
    # the origin lose 1e-5 of their length, and invariance to where the molecule sits would too.
    wide = positions.double()
    offsets = wide[neighbour] - wide[centre]
    local = torch.einsum("eab,ea->eb", frames[centre].double(), offsets)  # R_i^T (p_j - p_i)
    values = real_spherical_harmonics(local, order)  # (E, K)
    if edge_weight is not None:
        values = values * edge_weight[keep].double()[:, None]
    # Padded neighbour lists: edges sorted by centre, slot = rank among the centre's edges.
    n = positions.shape[0]
    degree = torch.bincount(centre, minlength=n)
    width = int(degree.max()) if centre.numel() else 0
    sort = torch.argsort(centre, stable=True)
    centre, neighbour, values = centre[sort], neighbour[sort], values[sort]
    slot = (
        torch.arange(centre.numel(), device=centre.device)
        - (torch.cumsum(degree, 0) - degree)[centre]
    )
    neighbours = torch.zeros(n, width, dtype=torch.long, device=positions.device)
    neighbours[centre, slot] = neighbour
    harmonics = torch.zeros(n, width, order * order, dtype=torch.float64, device=positions.device)
    harmonics[centre, slot] = values
    return SphericalGraph(neighbours, harmonics.to(positions.dtype), order)


def spherical_conv_reference(
    h: torch.Tensor,
    s_dense: torch.Tensor,
    weight0: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
) -> torch.Tensor:
    """The obvious dense form ``H W_0 + sum_k S_k H W_k + b`` (no activation).

    Args:
        h: (N, C_in); s_dense: (K, N, N); weight0: (C_in, C_out); weight: (K, C_in, C_out);
        bias: (C_out,) or None.
    """
    out = h @ weight0
    for k in range(s_dense.shape[0]):
        out = out + s_dense[k] @ h @ weight[k]
    return out if bias is None else out + bias


class SphericalGraphConv(nn.Module):
    """One S-GCN layer: ``act(H W_0 + sum_k S_k H W_k + b)`` with sparse ``S_k`` products.

    Args:
        in_channels: C_in node features.
        out_channels: C_out.
        order: L, the spherical-harmonic order (K = L**2 filters per neighbourhood; paper: 5).
        bias: add a learned bias.
        activation: a module applied to the output (``nn.ELU()`` in the paper) or None.
        method: ``"gather"`` (padded neighbour lists, one batched matmul: the fast path on a CPU)
            or ``"sparse"`` (``torch.sparse.mm`` with the stacked ``(K*N, N)`` matrix, 4-20x
            slower on a CPU at protein sizes); both equal the dense reference.

    Shapes:
        ``forward(h, graph)``: h (N, C_in), graph a :class:`SphericalGraph` of N nodes and order L
        -> (N, C_out).

    Parameters: ``C_in*C_out*(K + 1) + C_out`` (23 -> 20 at L = 5: 11,980).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        order: int = 5,
        bias: bool = True,
        activation: nn.Module | None = None,
        method: Literal["gather", "sparse"] = "gather",
    ) -> None:
        super().__init__()
        if order < 1:
            raise ValueError(f"order L must be >= 1, got {order}")
        if method not in ("gather", "sparse"):
            raise ValueError(f"method must be 'gather' or 'sparse', got {method!r}")
        self.method = method
        self.in_channels, self.out_channels, self.order = in_channels, out_channels, order
        self.weight0 = nn.Parameter(torch.empty(in_channels, out_channels))
        self.weight = nn.Parameter(torch.empty(order * order, in_channels, out_channels))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.activation = activation
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform ``W_0``; ``W_k`` scaled down by sqrt(K) so the sum starts balanced."""
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))
        nn.init.uniform_(self.weight0, -bound, bound)
        nn.init.uniform_(self.weight, -bound / self.order, bound / self.order)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, h: torch.Tensor, graph: SphericalGraph) -> torch.Tensor:
        if h.dim() != 2 or h.shape[1] != self.in_channels:
            raise ValueError(f"h must be (N, {self.in_channels}), got {tuple(h.shape)}")
        if graph.order != self.order or graph.num_nodes != h.shape[0]:
            raise ValueError(
                f"graph has order {graph.order} and {graph.num_nodes} nodes; layer order "
                f"{self.order}, h has {h.shape[0]} nodes"
            )
        n, k = h.shape[0], self.order * self.order
        if self.method == "gather":  # (N, K, D) @ (N, D, C_in): row i of every S_k H at once
            harmonics = graph.harmonics.to(h.dtype).transpose(1, 2)
            neighbours = torch.bmm(harmonics, h[graph.neighbours])
        else:  # (K*N, C_in): S_k H stacked over k
            neighbours = torch.sparse.mm(graph.stacked.to(h.dtype), h)
            neighbours = neighbours.reshape(k, n, self.in_channels).permute(1, 0, 2)
        out = h @ self.weight0 + neighbours.reshape(n, k * self.in_channels) @ self.weight.reshape(
            k * self.in_channels, self.out_channels
        )
        if self.bias is not None:
            out = out + self.bias
        return out if self.activation is None else self.activation(out)

    def reference(self, h: torch.Tensor, graph: SphericalGraph) -> torch.Tensor:
        """The same layer through :func:`spherical_conv_reference` (dense ``S``)."""
        out = spherical_conv_reference(
            h, graph.to_dense().to(h.dtype), self.weight0, self.weight, self.bias
        )
        return out if self.activation is None else self.activation(out)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, order={self.order}, method={self.method}"
