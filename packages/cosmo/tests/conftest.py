"""Shared cosmo test helpers: the dense exact posterior mean the Wiener solvers are judged by, and
the in-process runner of the command lines."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from convsuite_dev.testing import run_cli

from convsuite.cosmo.baselines import dense_wiener


@pytest.fixture
def exact_wiener() -> Callable[[np.ndarray, np.ndarray, np.ndarray, float], np.ndarray]:
    """``exact_wiener(data, observed, cl, noise_sigma)``: the dense posterior mean, NESTED."""
    return dense_wiener


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``invoke(app, *args)``: run a command in-process through core-ops' ``run``, as the console
    script does; returns (exit status, stdout, stderr)."""
    return lambda app, *args: run_cli(app, args, capsys)
