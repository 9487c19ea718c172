"""Shared proteins test helpers: the committed example native (2CVI chain A, 83 residues, a
held-out native of the bundled weights) and the in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def example_pdb() -> Path:
    return Path(str(resources.files("convsuite.proteins.data") / "examples" / "2cviA.pdb.gz"))


@pytest.fixture(scope="session")
def example(example_pdb: Path):
    from convsuite.proteins.data import read_structure

    return read_structure(example_pdb)


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``invoke(*args)``: run ``protein-qa`` in-process through core-ops' ``run``; returns
    (exit status, stdout, stderr)."""
    from convsuite.core_ops.cli import run
    from convsuite.proteins.cli import app

    def call(*args: object) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            run(app, [str(a) for a in args])
        captured = capsys.readouterr()
        return stop.value.code, captured.out, captured.err

    return call
