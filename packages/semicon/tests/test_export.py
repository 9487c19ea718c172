"""The networks export with ``torch.export`` and the exported programs give the same outputs.

The dense baseline exports whole, with a dynamic batch size. The sparse network does not: its
input is a set of active sites whose count, and the neighbour tables (rulebooks) built from them,
depend on the data. core-ops' sparse layers check the coordinates' bounds and walk the rulebooks
with ``Tensor.tolist()`` and Python loops over kernel taps, so export stops at the first guard on
a data-dependent value (``Min(u0, u1, u2) < 0`` in ``SparseTensor._check_sites``), and
``torch.jit.trace`` fails inside the rulebook cache. What is dense in it exports: the head from
the pooled sparse features to the logits (projection, ReLU, linear layer), checked here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convsuite.core_ops.hub import create_model
from convsuite.semicon.data import SimulationOptions, simulate_wafer_maps
from convsuite.semicon.model import SparseWaferNet, batch_wafer_maps

BATCH = torch.export.Dim("batch", min=1, max=64)


def test_dense_baseline_exports_with_a_dynamic_batch() -> None:
    torch.manual_seed(0)
    net = create_model("wafer_dense", preset="tiny").eval()
    program = torch.export.export(net, (torch.rand(2, 1, 32, 32),), dynamic_shapes=({0: BATCH},))
    exported = program.module()
    for batch in (1, 5):
        x = torch.rand(batch, 1, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(exported(x), net(x), rtol=1e-5, atol=1e-6)


class _SparseHead(nn.Module):
    """The dense end of :class:`SparseWaferNet`: pooled features (B, P) -> logits (B, K)."""

    def __init__(self, net: SparseWaferNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, pooled: Tensor) -> Tensor:
        return self.net.forward_head(self.net.project(pooled))


def test_sparse_network_head_exports_and_matches_the_whole_network() -> None:
    torch.manual_seed(0)
    net = create_model("wafer_sparse", preset="tiny").eval()
    maps = simulate_wafer_maps(3, seed=4, options=SimulationOptions(grid=256, defects_scale=0.05))
    x = batch_wafer_maps(maps, 256)
    with torch.no_grad():
        pooled, logits = net.pooled_features(x), net(x)
    head = _SparseHead(net).eval()
    program = torch.export.export(head, (pooled,), dynamic_shapes=({0: BATCH},))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(pooled), logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(program.module()(pooled[:1]), logits[:1], rtol=1e-5, atol=1e-6)
