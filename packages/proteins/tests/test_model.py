"""S-GCN(5) and the GCN baseline: sizes, outputs, invariance, weights round trip, and learning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import create_model, list_presets
from convsuite.core_ops.io import save_checkpoint
from convsuite.proteins.data import build_graph, collate, residue_lddt
from convsuite.proteins.data.decoys import make_decoys
from convsuite.proteins.data.decoyset import DecoySet
from convsuite.proteins.model import GCNQualityNet, SGCNConfig, SGCNQualityNet
from convsuite.proteins.train import QualityModule, decoy_loader


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_sizes_match_the_paper() -> None:
    sgcn, gcn = create_model("sgcn"), create_model("protein_gcn")
    assert isinstance(sgcn, SGCNQualityNet) and isinstance(gcn, GCNQualityNet)
    assert _count(sgcn) == 24_633  # paper: ~24.6K
    assert abs(_count(gcn) - _count(sgcn)) / _count(sgcn) < 0.01
    assert [c.out_channels for c in sgcn.convs] == [20, 16, 8, 4, 1]
    assert [type(n).__name__ for n in sgcn.norms] == ["Identity", "BatchNorm1d"] * 2
    assert sgcn.convs[0].order == 5 and sgcn.dropout.p == 0.02
    assert {"paper", "sgcn_r", "tiny"} <= set(list_presets("sgcn"))
    with pytest.raises(InputError):
        SGCNConfig.from_dict({"widths": [20, 16, 8, 4, 2]})


def test_scores_in_range_and_invariant(example) -> None:
    torch.manual_seed(0)
    net = create_model("sgcn", contact_weighting=True).eval()
    graph = build_graph(example)
    scores = net(collate([graph]))
    assert scores.shape == (83,) and ((scores > 0) & (scores < 1)).all()
    rotation, shift = Rotation.random(random_state=5), np.array([40.0, -25.0, 12.0])
    moved = type(graph)(
        graph.features,
        rotation.apply(graph.backbone.reshape(-1, 3)).reshape(-1, 3, 3) + shift,
        graph.edges,
        graph.edge_weight,
    )
    assert (net(collate([moved])) - scores).abs().max() <= 1e-5
    # Batching several structures gives each one the scores it gets alone (eval mode).
    both = net(collate([graph, moved]))
    torch.testing.assert_close(both[:83], scores, atol=1e-5, rtol=0)


def test_from_pretrained_round_trip(tmp_path: Path, example) -> None:
    net = create_model("sgcn", preset="tiny").eval()
    path = save_checkpoint(
        net.state_dict(), tmp_path / "tiny.safetensors", net.model_card("test", "none", "tests")
    )
    loaded = SGCNQualityNet.from_pretrained(path)
    batch = collate([build_graph(example)])
    torch.testing.assert_close(loaded(batch), net(batch))
    with pytest.raises(InputError, match="not a GCNQualityNet"):
        GCNQualityNet.from_pretrained(path)


@pytest.mark.parametrize("name", ["sgcn", "protein_gcn"])
def test_learns_residue_quality(example, name: str) -> None:
    """Tiny networks trained on unrelaxed decoys of one protein beat predicting the mean lDDT."""
    torch.manual_seed(0)
    decoys = make_decoys(example, 24, seed=0, relaxed=False)
    graphs = [build_graph(d.protein) for d in decoys]
    targets = [residue_lddt(d.protein, example) for d in decoys]

    names = [f"d{i}" for i in range(24)]
    train = DecoySet(graphs[:20], targets[:20], names[:20], ["x"] * 20, ["k"] * 20)
    held = DecoySet(graphs[20:], targets[20:], names[20:], ["x"] * 4, ["k"] * 4)
    net = create_model(name, preset="tiny")
    module = QualityModule(net, lr=1e-2, weight_decay=0.0)
    optimizer = module.configure_optimizers()
    for _ in range(15):
        for batch in decoy_loader(train, 5, shuffle=True):
            optimizer.zero_grad()
            module._loss(batch)[0].backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        batch = collate(held.graphs, held.targets)
        predicted = net(batch)
    mse = torch.mean((predicted - batch.target) ** 2).item()
    trivial = torch.mean((np.mean(np.concatenate(train.targets)) - batch.target) ** 2).item()
    assert mse < 0.6 * trivial, (mse, trivial)
    assert np.corrcoef(predicted.numpy(), batch.target.numpy())[0, 1] > 0.5
