"""The bundled weights: load through the hub, rank a native above its decoys, held-out split."""

from __future__ import annotations

import numpy as np

from convsuite.core_ops.hub import create_model, list_bundled
from convsuite.proteins.data import residue_lddt
from convsuite.proteins.data.decoys import make_decoys
from convsuite.proteins.data.natives import list_natives
from convsuite.proteins.infer import ModelQualityAssessor
from convsuite.proteins.metrics import pearson
from convsuite.proteins.model import GCNQualityNet, SGCNQualityNet


def test_bundled_weights_load() -> None:
    assert list_bundled("convsuite.proteins") == ["gcn_decoys", "sgcn_decoys"]
    sgcn = create_model("sgcn", pretrained="sgcn_decoys")
    gcn = create_model("protein_gcn", pretrained="gcn_decoys")
    assert isinstance(sgcn, SGCNQualityNet) and isinstance(gcn, GCNQualityNet)
    assert not sgcn.training and sgcn.card.metrics["val_global_pearson"] > 0.8
    assert sgcn.config == type(sgcn.config)(contact_weighting=True)  # S-GCN_r(5)
    assert gcn.config.contact_weighting


def test_example_is_held_out() -> None:
    splits = {row.pdb_id: row.split for row in list_natives()}
    assert splits["2CVI"] == "test"
    train = {row.pdb_id for row in list_natives("train")}
    test = {row.pdb_id for row in list_natives("test")}
    assert len(train) == 40 and len(test) == 10 and not train & test


def test_bundled_sgcn_ranks_and_localizes(example) -> None:
    """On relaxed decoys of a held-out native: global ranking and per-residue agreement."""
    decoys = make_decoys(example, 8, seed=11)
    assessor = ModelQualityAssessor.from_pretrained()
    native_score = assessor.score(example).global_score
    results = list(assessor.score_many([d.protein for d in decoys]))
    true = [residue_lddt(d.protein, example) for d in decoys]
    predicted_global = np.array([r.global_score for r in results])
    true_global = np.array([t.mean() for t in true])
    assert native_score > np.median(predicted_global)
    assert pearson(predicted_global, true_global) > 0.7
    pooled = pearson(np.concatenate([r.scores for r in results]), np.concatenate(true))
    assert pooled > 0.5
