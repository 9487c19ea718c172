"""Relaxed decoys: graded errors, ideal local geometry, no clashes, reproducible."""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from convsuite.proteins.data import residue_lddt
from convsuite.proteins.data.decoys import (
    _restrained_pairs,
    coordinate_noise,
    hinge_motion,
    make_decoys,
    relax,
)


def test_relaxed_decoys_keep_geometry(example) -> None:
    decoys = make_decoys(example, 8, seed=3)
    bonds, _ = _restrained_pairs(example)
    native_lengths = np.linalg.norm(
        example.coords[bonds[:, 0]] - example.coords[bonds[:, 1]], axis=1
    )
    r = example.residue_index
    kinds = set()
    for decoy in decoys:
        coords = decoy.protein.coords
        lengths = np.linalg.norm(coords[bonds[:, 0]] - coords[bonds[:, 1]], axis=1)
        assert np.abs(lengths - native_lengths).max() < 0.25  # no broken bonds
        pairs = cKDTree(coords).query_pairs(2.2, output_type="ndarray")
        assert not (np.abs(r[pairs[:, 0]] - r[pairs[:, 1]]) > 1).any()  # no clashes
        score = residue_lddt(decoy.protein, example)
        assert 0.1 < score.mean() < 0.99
        kinds.add(decoy.kind.split("+")[0])
    assert kinds == {"noise", "fragment", "register", "hinge"}
    again = make_decoys(example, 2, seed=3)
    np.testing.assert_allclose(again[0].protein.coords, decoys[0].protein.coords)


def test_relax_repairs_and_keeps_the_error(example) -> None:
    rng = np.random.default_rng(0)
    noisy = coordinate_noise(example, rng, 1.0)
    bonds, _ = _restrained_pairs(example)

    def bond_error(coords):
        lengths = np.linalg.norm(coords[bonds[:, 0]] - coords[bonds[:, 1]], axis=1)
        native = np.linalg.norm(example.coords[bonds[:, 0]] - example.coords[bonds[:, 1]], axis=1)
        return np.abs(lengths - native).mean()

    relaxed = relax(example, noisy)
    assert bond_error(relaxed) < 0.1 * bond_error(noisy)
    hinged = hinge_motion(example, np.random.default_rng(1), 45.0)
    after = example.with_coords(relax(example, hinged))
    # The hinge stays: the relaxed decoy is still far from the native after the hinge.
    assert residue_lddt(after, example).mean() < 0.85


def test_graded_noise(example) -> None:
    means = []
    for sigma in (0.5, 1.5, 3.0):
        coords = relax(example, coordinate_noise(example, np.random.default_rng(0), sigma))
        means.append(residue_lddt(example.with_coords(coords), example).mean())
    assert means[0] > means[1] > means[2]
