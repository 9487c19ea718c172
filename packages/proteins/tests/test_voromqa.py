"""VoroMQA baseline: the parser on a captured real ``voronota-voromqa`` output (tests/data: the
tool's standard output and ``--output-residue-scores`` file for the committed example 2cviA.pdb,
Voronota 1.22), the evaluation's VoroMQA path fed that same output by a replaying script, and the
"not on PATH" path. No test needs the binary (CI machines lack it)."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np
import pytest

from convsuite.core_ops.errors import InputError
from convsuite.proteins.data import build_graph, write_structure
from convsuite.proteins.data.decoyset import DecoySet
from convsuite.proteins.data.voromqa import parse_voromqa, residue_scores_of, run_voromqa
from convsuite.proteins.evaluate import evaluate_methods
from convsuite.proteins.metrics import pearson

DATA = Path(__file__).parent / "data"
STDOUT = DATA / "voromqa_2cviA_stdout.txt"
RESIDUES = DATA / "voromqa_2cviA_residues.txt"


def test_parse_captured_output(example) -> None:
    scores = parse_voromqa(STDOUT.read_text(), RESIDUES.read_text())
    assert scores.global_score == pytest.approx(0.46754)
    assert len(scores.residues) == 83
    assert scores.residues[("A", 1, "")] == pytest.approx(0.372706)
    aligned = residue_scores_of(scores, example)
    assert aligned.shape == (83,) and np.isfinite(aligned).all()
    assert ((aligned > 0) & (aligned < 1)).all()
    assert aligned[0] == pytest.approx(0.372706)


def test_parse_header_insertion_codes_and_garbage() -> None:
    header = "input voromqa_v1_score voromqa_v1_residues voromqa_v1_atoms\n" + STDOUT.read_text()
    scores = parse_voromqa(header, "c<B>r<12>i<A>R<ALA> 0.5\nc<B>r<13>R<GLY> 0.25\n")
    assert scores.global_score == pytest.approx(0.46754)
    assert scores.residues == {("B", 12, "A"): 0.5, ("B", 13, ""): 0.25}
    with pytest.raises(InputError, match="not VoroMQA output"):
        parse_voromqa("Segmentation fault\n", "")
    with pytest.raises(InputError, match="residue score line"):
        parse_voromqa(STDOUT.read_text(), "ATOM      1  N   MET A   1\n")


def _decoy_set(example, folder: Path) -> DecoySet:
    """Two 'decoys' of 2cviA (the example itself, twice) with their PDB files in ``folder``."""
    graph = build_graph(example)
    rng = np.random.default_rng(0)
    names = ["2cviA.pdb.gz#decoy0", "2cviA.pdb.gz#decoy1"]
    for name in names:
        write_structure(example, folder / f"2cviA_{name.split('#')[1]}.pdb")
    targets = [rng.uniform(0.2, 1.0, 83), rng.uniform(0.2, 1.0, 83)]
    return DecoySet([graph, graph], targets, names, ["2cviA.pdb.gz"] * 2, ["noise"] * 2)


def test_evaluate_runs_voromqa_on_the_structures(
    example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A script named voronota-voromqa replays the captured output: evaluate must call it once per
    decoy file, align its residue scores with the graph and use its global score."""
    structures = tmp_path / "pdb"
    structures.mkdir()
    decoys = _decoy_set(example, structures)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls.txt"
    script = bin_dir / "voronota-voromqa"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$2" >> {calls}\n'  # -i FILE --output-residue-scores OUT
        f'/bin/cp {RESIDUES} "$4"\n'
        f'/bin/sed "s#^2cviA.pdb#$2#" {STDOUT}\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(bin_dir))
    results, predictions = evaluate_methods(decoys, [], structures=structures)
    assert calls.read_text().split() == [
        str(structures / "2cviA_decoy0.pdb"),
        str(structures / "2cviA_decoy1.pdb"),
    ]
    expected = residue_scores_of(parse_voromqa(STDOUT.read_text(), RESIDUES.read_text()), example)
    np.testing.assert_array_equal(predictions["voromqa"][1], expected)
    per_model = np.mean([pearson(expected, t) for t in decoys.targets])
    assert results["voromqa"]["residue_pearson_per_model"] == pytest.approx(per_model)
    assert results["voromqa"]["models"] == 2.0
    (structures / "2cviA_decoy1.pdb").unlink()
    with pytest.raises(InputError, match="2cviA_decoy1.pdb: missing"):
        evaluate_methods(decoys, [], structures=structures)


def test_voromqa_not_on_path(example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    structures = tmp_path / "pdb"
    structures.mkdir()
    decoys = _decoy_set(example, structures)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(InputError, match="voronota-voromqa binary on PATH"):
        run_voromqa(structures / "2cviA_decoy0.pdb")
    results, predictions = evaluate_methods(decoys, [], structures=structures)
    assert results["voromqa"] == {"note": "not run: voronota-voromqa is not on PATH"}
    assert "voromqa" not in predictions and results["burial"]["models"] == 2.0
    results, _ = evaluate_methods(decoys, [])
    assert "no structure files" in results["voromqa"]["note"]
