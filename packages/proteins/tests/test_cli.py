"""protein-qa: outputs of score, one-line errors with exit 2 and nothing written, train/evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import gemmi
import numpy as np
import pytest

from convsuite.core_ops.hub import create_model
from convsuite.core_ops.io import save_checkpoint


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    net = create_model("sgcn", preset="tiny").eval()
    folder = tmp_path_factory.mktemp("weights")
    return save_checkpoint(
        net.state_dict(), folder / "tiny.safetensors", net.model_card("test", "none", "tests")
    )


def _copy_as(example_pdb: Path, path: Path) -> Path:
    structure = gemmi.read_structure(str(example_pdb))
    structure.setup_entities()
    if path.suffix == ".cif":
        structure.make_mmcif_document().write_file(str(path))
    else:
        structure.write_pdb(str(path))
    return path


def test_score_outputs(invoke, example_pdb: Path, tiny_weights: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    models = [
        _copy_as(example_pdb, tmp_path / "a" / "m.pdb"),
        _copy_as(example_pdb, tmp_path / "m2.cif"),
    ]
    out = tmp_path / "scores.csv"
    status, stdout, stderr = invoke(
        "score",
        *models,
        "--out",
        out,
        "--per-residue",
        tmp_path / "res",
        "--write-bfactor",
        tmp_path / "bf",
        "--weights",
        tiny_weights,
    )
    assert status == 0, stderr
    rows = list(csv.DictReader(out.open()))
    assert [r["model"] for r in rows] == [str(m) for m in models]
    assert all(r["n_residues"] == "83" for r in rows)
    assert rows[0]["global_score"] == rows[1]["global_score"]  # same structure, two formats
    per_residue = list(csv.DictReader((tmp_path / "res" / "m.csv").open()))
    assert list(per_residue[0]) == ["chain", "resnum", "resname", "score"]
    scores = np.array([float(r["score"]) for r in per_residue])
    assert len(scores) == 83 and ((scores >= 0) & (scores <= 1)).all()
    assert float(rows[0]["global_score"]) == pytest.approx(scores.mean(), abs=1e-3)
    written = gemmi.read_structure(str(tmp_path / "bf" / "m2.cif"))
    b = [atom.b_iso for residue in written[0][0] for atom in residue][:1]
    assert b[0] == pytest.approx(100 * scores[0], abs=0.1)
    assert "model,global_score,n_residues" in stdout


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("hello\n", "not"),
        (
            "HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00 20.00           O\nEND\n",
            "no protein residues",
        ),
        (
            "ATOM      1  CB  ALA A   1       0.000   0.000   0.000  1.00 20.00           C\n"
            "ATOM      2  CB  ALA A   2       3.800   0.000   0.000  1.00 20.00           C\nEND\n",
            "backbone",
        ),
    ],
)
def test_bad_input_exits_2_without_output(
    invoke, example_pdb: Path, tiny_weights: Path, tmp_path: Path, content: str, message: str
) -> None:
    good = _copy_as(example_pdb, tmp_path / "good.pdb")
    bad = tmp_path / "bad.pdb"
    bad.write_text(content)
    out = tmp_path / "scores.csv"
    status, _, stderr = invoke(
        "score",
        good,
        bad,
        "--out",
        out,
        "--per-residue",
        tmp_path / "res",
        "--weights",
        tiny_weights,
    )
    assert status == 2
    assert stderr.count("\n") == 1 and str(bad) in stderr and message in stderr
    assert not out.exists() and not (tmp_path / "res").exists()


def test_output_never_replaces_input(invoke, example_pdb: Path, tmp_path: Path) -> None:
    model = _copy_as(example_pdb, tmp_path / "m.pdb")
    before = model.read_bytes()
    status, _, stderr = invoke("score", model, "--out", model)
    assert status == 2 and "is also an input" in stderr
    assert model.read_bytes() == before


def test_decoys_train_evaluate(invoke, example_pdb: Path, tmp_path: Path) -> None:
    native = _copy_as(example_pdb, tmp_path / "native.pdb")
    status, _, err = invoke(
        "decoys",
        native,
        "--per-native",
        "4",
        "--include-natives",
        "--out",
        tmp_path / "t.npz",
        "--write-pdb",
        tmp_path / "pdb",
    )
    assert status == 0, err
    assert len(list((tmp_path / "pdb").glob("*.pdb"))) == 5
    status, stdout, err = invoke(
        "train",
        "--train",
        tmp_path / "t.npz",
        "--val",
        tmp_path / "t.npz",
        "--preset",
        "tiny",
        "--epochs",
        "2",
        "--out",
        tmp_path / "run",
    )
    assert status == 0, err
    card = json.loads((tmp_path / "run" / "sgcn.json").read_text())
    assert card["architecture"] == "SGCNQualityNet" and "val_global_pearson" in card["metrics"]
    assert card["recipe"]  # the command line that ran (pytest here)
    status, stdout, err = invoke(
        "evaluate",
        "--data",
        tmp_path / "t.npz",
        "--weights",
        tmp_path / "run" / "sgcn.safetensors",
        "--out",
        tmp_path / "eval.json",
        "--figures",
        tmp_path / "fig",
    )
    assert status == 0, err
    results = json.loads((tmp_path / "eval.json").read_text())
    assert set(results) >= {"sgcn", "burial"}
    assert results["sgcn"]["models"] == 5.0 and "top1_loss" in results["sgcn"]
    assert (tmp_path / "fig" / "t_correlations.png").read_bytes()[:4] == b"\x89PNG"


def test_help_has_examples(invoke) -> None:
    for command in ("score", "decoys", "train", "evaluate"):
        status, stdout, _ = invoke(command, "--help")
        assert status == 0 and "Example: protein-qa " + command in stdout


def test_contacts_option(
    invoke, example_pdb: Path, tiny_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _copy_as(example_pdb, tmp_path / "m.pdb")
    status, _, stderr = invoke("score", model, "--out", tmp_path / "s.csv", "--contacts", "bogus")
    assert status == 2 and "--contacts" in stderr and not (tmp_path / "s.csv").exists()
    monkeypatch.setenv("PATH", "")  # voronota absent, as on the CI machines
    status, _, stderr = invoke(
        "score",
        model,
        "--out",
        tmp_path / "s.csv",
        "--contacts",
        "voronota",
        "--weights",
        tiny_weights,
    )
    assert status == 2 and "voronota binary on PATH" in stderr
    assert not (tmp_path / "s.csv").exists()
