"""SphericalGraphConv: real Y_lm against scipy, dense reference, gradcheck, rigid-motion invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation
from scipy.special import sph_harm_y
from torch import nn

from convsuite.core_ops.layers.spherical import (
    SphericalGraphConv,
    local_frames,
    real_spherical_harmonics,
    spherical_adjacency,
    spherical_conv_reference,
)


def _real_from_scipy(l: int, m: int, polar: np.ndarray, azimuth: np.ndarray) -> np.ndarray:
    """Real Y_lm from scipy's complex Y_l^m (Condon-Shortley phase included)."""
    if m == 0:
        return sph_harm_y(l, 0, polar, azimuth).real
    complex_y = sph_harm_y(l, abs(m), polar, azimuth)
    part = complex_y.real if m > 0 else complex_y.imag
    return math.sqrt(2.0) * (-1) ** abs(m) * part


def test_real_harmonics_match_scipy() -> None:
    # scipy 1.17 removed sph_harm; sph_harm_y(n, m, polar, azimuth) is its successor.
    rng = np.random.default_rng(0)
    u = rng.normal(size=(200, 3))
    u[:2] = [[0, 0, 1], [0, 0, -1]]  # the poles
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    polar, azimuth = np.arccos(np.clip(u[:, 2], -1, 1)), np.arctan2(u[:, 1], u[:, 0])
    ours = real_spherical_harmonics(torch.from_numpy(u), 6).numpy()
    for l in range(6):
        for m in range(-l, l + 1):
            np.testing.assert_allclose(
                ours[:, l * l + l + m], _real_from_scipy(l, m, polar, azimuth), atol=1e-10
            )


def test_real_harmonics_orthonormal() -> None:
    # Monte Carlo over uniform directions: <Y_a Y_b> * 4 pi -> identity.
    u = torch.randn(400_000, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = real_spherical_harmonics(u, 4)
    gram = 4 * math.pi * (y.T @ y) / len(u)
    torch.testing.assert_close(gram, torch.eye(16, dtype=torch.float64), atol=0.02, rtol=0)


def _toy_molecule(n: int = 30, seed: int = 0, dtype=torch.float64):
    """A compact chain of pseudo-residues (N, CA, C) and a contact graph within 8 Å."""
    g = torch.Generator().manual_seed(seed)
    ca = torch.cumsum(torch.randn(n, 3, generator=g, dtype=dtype) * 2.2, dim=0)
    n_atoms = ca + torch.randn(n, 3, generator=g, dtype=dtype) * 0.8
    c_atoms = ca + torch.randn(n, 3, generator=g, dtype=dtype) * 0.8
    dist = torch.cdist(ca, ca)
    centre, neighbour = torch.nonzero((dist < 8.0) & (dist > 0), as_tuple=True)
    weights = torch.rand(len(centre), generator=g, dtype=dtype)
    return n_atoms, ca, c_atoms, torch.stack([centre, neighbour]), weights


def _graph(n_atoms, ca, c_atoms, edges, weights, order=5):
    return spherical_adjacency(ca, local_frames(n_atoms, ca, c_atoms), edges, order, weights)


@pytest.mark.parametrize("method", ["gather", "sparse"])
def test_equals_dense_reference(method: str) -> None:
    torch.manual_seed(0)
    n_atoms, ca, c_atoms, edges, weights = _toy_molecule()
    graph = _graph(n_atoms, ca, c_atoms, edges, weights)
    layer = SphericalGraphConv(7, 5, order=5, activation=nn.ELU(), method=method).double()
    h = torch.randn(30, 7, dtype=torch.float64)
    torch.testing.assert_close(layer(h, graph), layer.reference(h, graph), rtol=1e-10, atol=1e-10)
    # The reference itself against explicit per-edge sums.
    dense = graph.to_dense()
    frames = local_frames(n_atoms, ca, c_atoms)
    i, j = edges[:, 3]
    u = frames[i].T @ (ca[j] - ca[i])
    expected = real_spherical_harmonics(u[None], 5)[0] * weights[3]
    torch.testing.assert_close(dense[:, i, j], expected)
    # One output row as an explicit sum over the centre's neighbours.
    out = spherical_conv_reference(h, dense, layer.weight0, layer.weight, layer.bias)
    row = h[i] @ layer.weight0 + layer.bias
    for n_j in edges[1][edges[0] == i]:
        y = real_spherical_harmonics((frames[i].T @ (ca[n_j] - ca[i]))[None], 5)[0]
        w = weights[(edges[0] == i) & (edges[1] == n_j)][0]
        row = row + torch.einsum("k,c,kcd->d", y * w, h[n_j], layer.weight)
    torch.testing.assert_close(out[i], row)


@pytest.mark.parametrize("method", ["gather", "sparse"])
def test_rigid_motion_invariance(method: str) -> None:
    torch.manual_seed(0)
    # A float32 network on float64 coordinates, as the protein pipeline feeds it (gemmi reads
    # float64); float32 coordinates 50 Å from the origin are rounded to 4e-6 Å, which alone moves
    # l = 4 harmonics by ~1e-5.
    n_atoms, ca, c_atoms, edges, weights = _toy_molecule()
    layer = SphericalGraphConv(7, 5, order=5, activation=nn.ELU(), method=method)
    h = torch.randn(30, 7)
    before = layer(h, _graph(n_atoms, ca, c_atoms, edges, weights))
    rotation = torch.from_numpy(Rotation.random(random_state=3).as_matrix())
    shift = torch.tensor([12.0, -40.0, 7.5], dtype=torch.float64)
    moved = [p @ rotation.T + shift for p in (n_atoms, ca, c_atoms)]
    after = layer(h, _graph(*moved, edges, weights))
    assert (after - before).abs().max() <= 1e-5
    # A reflection is not a rotation: the frames flip handedness and the output changes.
    mirrored = [
        p * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64) for p in (n_atoms, ca, c_atoms)
    ]
    assert (layer(h, _graph(*mirrored, edges, weights)) - before).abs().max() > 1e-3


@pytest.mark.parametrize("method", ["gather", "sparse"])
def test_gradcheck_float64(method: str) -> None:
    torch.manual_seed(0)
    n_atoms, ca, c_atoms, edges, weights = _toy_molecule(n=8)
    graph = _graph(n_atoms, ca, c_atoms, edges, weights, order=3)
    layer = SphericalGraphConv(3, 2, order=3, activation=nn.ELU(), method=method).double()
    h = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    names = [name for name, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in layer.parameters())

    def fn(x, *values):
        return torch.func.functional_call(layer, dict(zip(names, values, strict=True)), (x, graph))

    assert torch.autograd.gradcheck(fn, (h, *params), eps=1e-6, atol=1e-6)
    # Gradients through the geometry too: harmonics and frames are differentiable.
    pos = ca.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p: real_spherical_harmonics(p[1:] - p[:1], 4), (pos,), eps=1e-6, atol=1e-6
    )


def test_parameter_count_and_errors() -> None:
    layer = SphericalGraphConv(23, 20, order=5)
    assert sum(p.numel() for p in layer.parameters()) == 23 * 20 * 26 + 20
    n_atoms, ca, c_atoms, edges, weights = _toy_molecule()
    graph = _graph(n_atoms, ca, c_atoms, edges, weights, order=4)
    with pytest.raises(ValueError, match="order"):
        layer(torch.randn(30, 23), graph)
    with pytest.raises(ValueError, match=r"\(N, 23\)"):
        layer(torch.randn(30, 22), graph)


def test_self_loops_dropped_and_weights_scale() -> None:
    n_atoms, ca, c_atoms, edges, _ = _toy_molecule()
    loops = torch.arange(30).repeat(2, 1)
    with_loops = spherical_adjacency(
        ca, local_frames(n_atoms, ca, c_atoms), torch.cat([edges, loops], 1), 3
    )
    plain = spherical_adjacency(ca, local_frames(n_atoms, ca, c_atoms), edges, 3)
    torch.testing.assert_close(with_loops.to_dense(), plain.to_dense())
    doubled = spherical_adjacency(
        ca, local_frames(n_atoms, ca, c_atoms), edges, 3, torch.full((edges.shape[1],), 2.0)
    )
    torch.testing.assert_close(doubled.to_dense(), 2 * plain.to_dense())
