"""Shared audio test helpers: one torch thread, short simulated calls, the in-process CLI runner."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from convsuite_dev.testing import run_cli


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread in every test: the CPUs are shared."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def invoke(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``invoke(*args)``: run ``aec`` in-process; returns (exit status, stdout, stderr)."""
    from convsuite.audio.cli import app

    def call(*args) -> tuple[int, str, str]:
        return run_cli(app, args, capsys)

    return call
