"""Shared materials test helpers: hyperspy's import notes silenced, small simulated cubes, and the
in-process runner of the command line."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from convsuite_dev.testing import run_cli

logging.getLogger("hyperspy").setLevel(logging.ERROR)


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread in every test (imports on the way may reset it): the CPUs are shared, and
    oversubscribed threads train many times slower."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def small_cube():
    """A 24 x 24 simulated cube with 30 single-pixel 3 eV Fe L edge shifts (seed 1)."""
    from convsuite.materials.data import AnomalySpec, EnergyAxis, simulate_cube

    return simulate_cube(
        (24, 24),
        seed=1,
        anomalies=[AnomalySpec("shift", 3.0, 30)],
        energy=EnergyAxis(640.0, 0.25, 480),
    )


@pytest.fixture(scope="session")
def small_cube_file(small_cube, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from convsuite.materials.data import write_signal

    return write_signal(small_cube, tmp_path_factory.mktemp("cube") / "cube.hspy")


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``invoke(*args)``: run ``eels-anomaly`` in-process through core-ops' ``run``; returns
    (exit status, stdout, stderr)."""
    from convsuite.materials.cli import app

    return lambda *args: run_cli(app, args, capsys)
