"""Shared proteins test helpers: the committed example native (2CVI chain A, 83 residues, a
held-out native of the bundled weights) and the in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread in each test (the root conftest restores the count after every test): the
    test machines share two cores, and an OpenMP thread spinning while another process holds the
    other core makes small-graph training up to 100x slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
