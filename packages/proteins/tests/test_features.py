"""Residue graph features and contacts against brute-force and biotite oracles."""

from __future__ import annotations

import biotite.structure as struc
import numpy as np
from scipy.spatial.transform import Rotation

from convsuite.proteins.data import NUM_FEATURES, build_graph, residue_lddt
from convsuite.proteins.data.features import _MAX_ASA, CONTACT_CUTOFF, residue_contacts


def test_contacts_match_brute_force(example) -> None:
    edges, counts = residue_contacts(example)
    distances = np.linalg.norm(example.coords[:, None] - example.coords[None], axis=-1)
    r = example.residue_index
    close = (distances < CONTACT_CUTOFF) & (r[:, None] != r[None])
    expected = np.zeros((example.num_residues,) * 2, dtype=int)
    np.add.at(expected, (r[:, None].repeat(len(r), 1)[close], r[None].repeat(len(r), 0)[close]), 1)
    dense = np.zeros_like(expected)
    dense[edges[0], edges[1]] = counts
    np.testing.assert_array_equal(dense, expected)
    assert (dense == dense.T).all()


def test_features(example) -> None:
    graph = build_graph(example)
    assert graph.features.shape == (83, NUM_FEATURES) and graph.features.dtype == np.float32
    np.testing.assert_array_equal(graph.features[:, :20].sum(1), 1.0)
    assert graph.features[:, :20].argmax(1).tolist() == example.aa_index.tolist()
    # SASA: biotite's Shrake-Rupley with its default 1000 points agrees within a few percent.
    fine = struc.sasa(example.to_atom_array(), vdw_radii="Single")
    maximal = np.array([_MAX_ASA[name] for name in example.resname])
    fine_residue = np.clip(np.bincount(example.residue_index, weights=fine) / maximal, 0, 1.5)
    ours = graph.features[:, 22]
    assert np.abs(ours - fine_residue).max() < 0.05
    assert np.corrcoef(ours, fine_residue)[0, 1] > 0.99
    # Buried residues (many atoms within 10 Å) are the least exposed.
    buried = graph.features[:, 21] > np.quantile(graph.features[:, 21], 0.8)
    exposed = graph.features[:, 21] < np.quantile(graph.features[:, 21], 0.2)
    assert ours[buried].mean() < 0.5 * ours[exposed].mean()


def test_features_invariant_to_rigid_motion(example) -> None:
    moved = example.with_coords(
        Rotation.random(random_state=1).apply(example.coords) + [30.0, -12.0, 4.0]
    )
    a, b = build_graph(example), build_graph(moved)
    np.testing.assert_array_equal(a.edges, b.edges)
    np.testing.assert_allclose(a.features[:, :22], b.features[:, :22], atol=1e-6)
    # Shrake-Rupley's 100 test points per atom do not turn with the molecule: sampling noise.
    np.testing.assert_allclose(a.features[:, 22], b.features[:, 22], atol=0.06)


def test_lddt_per_residue(example) -> None:
    np.testing.assert_allclose(residue_lddt(example, example), 1.0)
    rng = np.random.default_rng(0)
    coords = example.coords.copy()
    moved = example.residue_index >= 60
    coords[moved] += rng.normal(scale=3.0, size=(moved.sum(), 3))
    decoy = example.with_coords(coords)
    scores = residue_lddt(decoy, example)
    residues_moved = np.arange(example.num_residues) >= 60
    assert scores[residues_moved].mean() < 0.5 < scores[~residues_moved][:40].mean()
    # Oracle: biotite's own per-residue aggregation on the same atoms.
    reference = struc.lddt(
        example.to_atom_array(), decoy.coords.astype(np.float32), aggregation="residue"
    )
    np.testing.assert_allclose(scores, reference, atol=1e-6)
    # Atoms matched by name: a model missing side-chain atoms is still scored.
    keep = np.isin(example.atom_name, ["N", "CA", "C", "O"])
    from dataclasses import replace

    backbone_only = replace(
        decoy,
        coords=decoy.coords[keep],
        atom_name=decoy.atom_name[keep],
        element=decoy.element[keep],
        residue_index=decoy.residue_index[keep],
    )
    partial = residue_lddt(backbone_only, example)
    assert np.isfinite(partial).all() and np.corrcoef(partial, scores)[0, 1] > 0.8
