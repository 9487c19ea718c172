"""Fixtures of the medseg tests: untrained tiny checkpoints, small spine phantoms in the IVDM3Seg
layout, and ``medseg`` run in-process."""

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


SMALL_SPINE = {"shape": (12, 128, 128), "spacing": (6.0, 2.5, 2.5)}
"""Small phantoms for tests: the same anatomy on a coarser grid (72 x 320 x 320 mm)."""


@pytest.fixture(scope="session")
def ivd_tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny IVD-Net checkpoint (files and shapes are checked, not accuracy)."""
    torch.manual_seed(0)
    net = create_model("ivdnet", preset="tiny")
    path = tmp_path_factory.mktemp("ivd_weights") / "ivdnet_tiny.safetensors"
    card = net.model_card(recipe="test", training_data="none", intended_use="tests")
    return save_checkpoint(net.state_dict(), path, card)


@pytest.fixture(scope="session")
def spines(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two small labelled spine phantoms (seed 5) in the IVDM3Seg layout, reoriented at random."""
    from convsuite.medseg.data.ivdm3seg import write_subject
    from convsuite.medseg.data.spine_phantom import SpineOptions, simulate_spines

    root = tmp_path_factory.mktemp("spines")
    for index, phantom in enumerate(simulate_spines(2, 5, SpineOptions(**SMALL_SPINE))):
        write_subject(root, f"{index:02d}", phantom.image, phantom.affine, phantom.labels)
    return root


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
