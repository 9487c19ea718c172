"""The wheel ships the bundled weights, the natives list, the example structure and the commands."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1]


@pytest.mark.slow
@pytest.mark.packaging
def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", tmp_path, PACKAGE],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("convsuite_proteins-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()
    root = "convsuite/proteins/"
    for name in (
        "weights/sgcn_decoys.safetensors",
        "weights/sgcn_decoys.json",
        "weights/gcn_decoys.safetensors",
        "weights/gcn_decoys.json",
        "data/natives.txt",
        "data/examples/2cviA.pdb.gz",
        "cli.py",
    ):
        assert root + name in names, name
    assert "convsuite/__init__.py" not in names  # PEP 420 namespace
    assert "protein-qa=convsuite.proteins.cli:main" in entry_points.replace(" ", "")
    assert "proteins=convsuite.proteins.demo:run" in entry_points.replace(" ", "")
    assert "Requires-Dist: convsuite-core-ops" in metadata
