"""Fixtures of the medseg tests: an untrained tiny checkpoint, and ``medseg`` run in-process."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convsuite.core_ops.cli import run
from convsuite.core_ops.hub import create_model
from convsuite.core_ops.io import save_checkpoint
from convsuite.medseg.cli import app


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny HybridGNet checkpoint: the files it writes are checked, not its accuracy."""
    torch.manual_seed(0)
    net = create_model("hybridgnet", preset="tiny")
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    card = net.model_card(recipe="test", training_data="none", intended_use="tests")
    return save_checkpoint(net.state_dict(), path, card)


class Medseg:
    """``medseg ARGS`` run through ``core_ops.cli.run`` as the console script does."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    def __call__(self, *args: str | Path) -> int:
        """The exit status (0 when the command returns)."""
        with pytest.raises(SystemExit) as exit_info:
            run(app, [str(a) for a in args])
        return exit_info.value.code

    def refused(self, *args: str | Path) -> str:
        """Check that ``medseg ARGS`` exits 2 with one ``error:`` line on stderr; that line."""
        self.capsys.readouterr()
        status = self(*args)
        err = self.capsys.readouterr().err.strip().splitlines()
        assert status == 2 and len(err) == 1 and err[0].startswith("error: "), (status, err)
        return err[0]


@pytest.fixture
def medseg(capsys: pytest.CaptureFixture[str]) -> Medseg:
    return Medseg(capsys)
