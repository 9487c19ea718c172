"""``torch.export`` of the tiny presets, with dynamic residue count (and neighbour width / contact
count), checked on a second graph of another size against the eager network.

S-GCN exports on its tensors (:class:`TensorQualityNet`: features and the padded neighbour lists
with their harmonics); building those lists (``spherical_adjacency``) stays outside because it
sizes the padding from the data (a data-dependent shape torch.export refuses to guard on). The
GCN exports whole: its inputs are the features, contacts and contact weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.export import Dim

from convsuite.core_ops.hub import create_model
from convsuite.proteins.data import build_graph, collate
from convsuite.proteins.data.features import ResidueGraph
from convsuite.proteins.model import TensorQualityNet


@pytest.fixture(scope="module")
def graphs(example) -> tuple[ResidueGraph, ResidueGraph]:
    whole = build_graph(example)
    m = 50  # the first 50 residues, contacts of >= 3 atom pairs: another N, D and E
    keep = (whole.edges[0] < m) & (whole.edges[1] < m) & (whole.edge_weight >= 0.3)
    part = ResidueGraph(
        whole.features[:m], whole.backbone[:m], whole.edges[:, keep], whole.edge_weight[keep]
    )
    return whole, part


@pytest.mark.parametrize(
    ("name", "preset"), [("sgcn", "tiny"), ("protein_gcn", "tiny"), ("sgcn", "sgcn_r")]
)
def test_export_matches_eager(graphs, name: str, preset: str) -> None:
    torch.manual_seed(0)
    net = create_model(name, preset=preset).eval()
    for norm in net.norms:  # non-trivial running statistics, as after training
        if isinstance(norm, torch.nn.BatchNorm1d):
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
    first, second = (collate([g]) for g in graphs)
    support_1, support_2 = net.support(first), net.support(second)
    assert support_1[0].shape != support_2[0].shape
    nodes = Dim("residues", min=2, max=100_000)
    if name == "sgcn":
        assert support_1[0].shape[1] != support_2[0].shape[1]  # padded neighbour width D
        width = Dim("neighbours", min=2, max=1_000)
        dynamic = ({0: nodes}, ({0: nodes, 1: width}, {0: nodes, 1: width}))
    else:
        contacts = Dim("contacts", min=2, max=10_000_000)
        dynamic = ({0: nodes}, ({1: contacts}, {0: contacts}))  # *support: one tuple
    program = torch.export.export(
        TensorQualityNet(net), (first.features, *support_1), dynamic_shapes=dynamic
    )
    exported = program.module()
    for batch, support in ((first, support_1), (second, support_2)):
        expected = net(batch)
        got = exported(batch.features, *support)
        assert got.shape == (batch.features.shape[0],)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert np.ptp(net(second).detach().numpy()) > 0  # a non-constant output was compared
