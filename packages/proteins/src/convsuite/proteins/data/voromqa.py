"""VoroMQA scores of structure files from the ``voronota-voromqa`` binary (Voronota, Debian package
``voronota``): the knowledge-based baseline S-GCN is compared with (Igashov et al. 2021, table 2).

``voronota-voromqa -i FILE --output-residue-scores RES`` prints one line
``{file} {global score} {residues} {atoms}`` and writes one line per residue,
``c<A>r<12>[i<B>]R<ALA> 0.4377`` (its score smoothed over a 5-residue window, the tool's default).
Scores are in [0, 1], higher = better, like lDDT; they are compared by correlation only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.proteins.data.features import voronota_residue
from convsuite.proteins.data.structure import Protein

__all__ = ["VoromqaScores", "parse_voromqa", "residue_scores_of", "run_voromqa"]

BINARY = "voronota-voromqa"


@dataclass(frozen=True)
class VoromqaScores:
    """What VoroMQA says of one structure.

    Attributes:
        global_score: the model's VoroMQA score (0-1).
        residues: (chain, resnum, icode) -> smoothed residue score (0-1).
    """

    global_score: float
    residues: dict[tuple[str, int, str], float]


def parse_voromqa(summary: str, residue_text: str, source: str = BINARY) -> VoromqaScores:
    """Parse ``voronota-voromqa``'s standard output and its ``--output-residue-scores`` file.

    Args:
        summary: standard output: ``{file} {global} {residues} {atoms}`` (a header line starting
            with ``input`` is skipped).
        residue_text: lines ``c<A>r<12>[i<B>]R<ALA> score``.
        source: named in errors.

    Raises:
        InputError: either text is not VoroMQA output.
    """
    lines = [
        line.split() for line in summary.splitlines() if line.strip() and line.split()[0] != "input"
    ]
    try:
        global_score = float(lines[-1][1])
    except (IndexError, ValueError):
        raise InputError(source, f"is not VoroMQA output: {summary.strip()[:80]!r}") from None
    residues: dict[tuple[str, int, str], float] = {}
    for line in residue_text.splitlines():
        fields = line.split()
        if not fields:
            continue
        key = voronota_residue(fields[0])
        if key is None or len(fields) < 2:
            raise InputError(source, f"is not a VoroMQA residue score line: {line[:80]!r}")
        residues[key] = float(fields[1])
    return VoromqaScores(global_score, residues)


def run_voromqa(path: str | os.PathLike[str]) -> VoromqaScores:
    """Run ``voronota-voromqa`` on one PDB/mmCIF file.

    Raises:
        InputError: the binary is not on PATH, or it failed on the file.
    """
    binary = shutil.which(BINARY)
    if binary is None:
        raise InputError(path, f"VoroMQA needs the {BINARY} binary on PATH (Debian: voronota)")
    with tempfile.TemporaryDirectory() as folder:
        residue_file = Path(folder) / "residues.txt"
        result = subprocess.run(
            [binary, "-i", str(path), "--output-residue-scores", str(residue_file)],
            capture_output=True,
            text=True,
            check=False,
            cwd=folder,  # the tool may leave temporary files in the working directory
        )
        if result.returncode or not residue_file.exists():
            raise InputError(path, f"{BINARY} failed: {result.stderr.strip()[-200:]}")
        return parse_voromqa(result.stdout, residue_file.read_text(), str(path))


def residue_scores_of(scores: VoromqaScores, protein: Protein) -> np.ndarray:
    """(R,) VoroMQA residue scores in ``protein``'s residue order; NaN where it gave none."""
    return np.array([scores.residues.get(key, np.nan) for key in protein.residue_keys()])
