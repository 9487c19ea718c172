"""ChebConv against torch_geometric's ChebConv (values and gradients), and NodeResample."""

from __future__ import annotations

import pytest
import torch
from convsuite_dev.testing import check_layer
from torch_geometric.nn import ChebConv as PygChebConv

from convsuite.core_ops.layers import ChebConv, NodeResample, scaled_laplacian


def _two_rings(n1: int = 7, n2: int = 5) -> torch.Tensor:
    """Adjacency of two disjoint closed rings (contours), like HybridGNet's organ graphs."""
    n = n1 + n2
    adjacency = torch.zeros(n, n)
    for start, size in ((0, n1), (n1, n2)):
        for i in range(size):
            a, b = start + i, start + (i + 1) % size
            adjacency[a, b] = adjacency[b, a] = 1.0
    return adjacency


def _edge_index(adjacency: torch.Tensor) -> torch.Tensor:
    return adjacency.nonzero().T.contiguous()


@pytest.mark.parametrize("k", [1, 2, 6])
def test_chebconv_matches_torch_geometric(k: int) -> None:
    torch.manual_seed(0)
    adjacency = _two_rings()
    ours = ChebConv(4, 3, k, adjacency).double()
    oracle = PygChebConv(4, 3, k, normalization="sym").double()
    with torch.no_grad():
        # The buffer was built in float32; rebuild it in float64 to compare at 1e-10.
        ours.laplacian.copy_(scaled_laplacian(adjacency.double()))
        for order, lin in enumerate(oracle.lins):
            lin.weight.copy_(torch.randn_like(lin.weight))
            ours.weight[order].copy_(lin.weight.T)
        oracle.bias.copy_(torch.randn_like(oracle.bias))
        ours.bias.copy_(oracle.bias)
    x = torch.randn(2, 12, 4, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = ours(x)
    y_ref = oracle(x_ref, _edge_index(adjacency))
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    grad_out = torch.randn_like(y)
    y.backward(grad_out)
    y_ref.backward(grad_out)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-10)
    for order, lin in enumerate(oracle.lins):
        torch.testing.assert_close(ours.weight.grad[order], lin.weight.grad.T)


def test_chebconv_is_local_to_k_minus_one_hops() -> None:
    """A K-order filter reaches exactly K-1 hops along a ring and never crosses to another ring."""
    adjacency = _two_rings(9, 5)
    layer = ChebConv(1, 1, 3, adjacency, bias=False)
    x = torch.zeros(1, 14, 1)
    x[0, 0, 0] = 1.0
    reached = layer(x)[0, :, 0].abs() > 1e-7
    assert reached[[0, 1, 2, 7, 8]].all()  # node 0 and its neighbours within 2 hops on ring 1
    assert not reached[3:7].any() and not reached[9:].any()


def test_chebconv_battery_and_errors() -> None:
    adjacency = _two_rings()
    check_layer(lambda: ChebConv(3, 5, 4, adjacency), (2, 12, 3), gradcheck_shape=(1, 12, 3))
    with pytest.raises(ValueError, match="node features"):
        ChebConv(3, 5, 4, adjacency)(torch.randn(2, 11, 3))
    with pytest.raises(ValueError, match="symmetric"):
        scaled_laplacian(torch.triu(adjacency))


def test_node_resample_pools_and_unpools() -> None:
    down = torch.tensor([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]])
    pool = NodeResample(down)
    x = torch.arange(8.0).reshape(1, 4, 2)
    torch.testing.assert_close(pool(x), torch.tensor([[[1.0, 2.0], [5.0, 6.0]]]))
    assert NodeResample(down.T)(pool(x)).shape == (1, 4, 2)
