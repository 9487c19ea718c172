"""Shared proteins test helpers: the committed example native (2CVI chain A, 83 residues, a
held-out native of the bundled weights) and the in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pytest
from convsuite_dev.testing import run_cli


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
    from convsuite.proteins.cli import app

    return lambda *args: run_cli(app, args, capsys)
