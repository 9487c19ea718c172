"""Tests of the shared Lightning pieces (training.py) and of the io.py plumbing they rely on."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import Pretrained
from convsuite.core_ops.io import (
    InputError,
    ModelCard,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)
from convsuite.core_ops.training import (
    export_best,
    fine_tuned_card_text,
    init_from,
    make_trainer,
    seed_everything,
)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))


class _Regressor(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = _mlp()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=2e-2)


def _loaders(seed: int) -> tuple[DataLoader, DataLoader]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(384, 4, generator=generator)
    y = torch.sin(x[:, :1]) + 0.5 * x[:, 1:2] * x[:, 2:3] - 0.3 * x[:, 3:]
    train = TensorDataset(x[:256], y[:256])
    val = TensorDataset(x[256:], y[256:])
    return DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128)


def _card() -> ModelCard:
    return ModelCard(
        architecture="Sequential",
        config={"hidden": 16},
        recipe="pytest packages/core-ops/tests/test_training.py",
        training_data="synthetic regression, seed 0",
        metrics={"epochs": 3.0},
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[L.Trainer, _Regressor, dict]:
    """One short CPU fit shared by the tests below; returns trainer, module and logged losses."""
    out_dir = tmp_path_factory.mktemp("fit")
    seed_everything(0)
    module = _Regressor()
    train, val = _loaders(0)
    trainer = make_trainer(out_dir, max_epochs=3, accelerator="cpu", devices=1, progress=False)
    initial = trainer.validate(module, val, verbose=False)[0]["val_loss"]
    trainer.fit(module, train, val)
    with open(next(out_dir.glob("csv/version_*/metrics.csv")), newline="") as handle:
        val_losses = [float(row["val_loss"]) for row in csv.DictReader(handle) if row["val_loss"]]
    return trainer, module, {"initial": initial, "val": val_losses, "out_dir": out_dir}


def test_make_trainer_fit_lowers_val_loss_and_keeps_best(fitted) -> None:
    trainer, _, log = fitted
    # validate() also logs once, so the CSV holds the initial value plus one per epoch.
    assert len(log["val"]) == 1 + 3
    assert log["val"][-1] < 0.7 * log["initial"]
    best = trainer.checkpoint_callback
    assert best.monitor == "val_loss"
    assert float(best.best_model_score) == pytest.approx(min(log["val"][1:]), rel=1e-6)
    assert best.best_model_path.startswith(str(log["out_dir"] / "checkpoints"))
    assert trainer.num_sanity_val_steps == 0


def test_export_best_round_trips_through_safetensors(fitted, tmp_path) -> None:
    trainer, module, _ = fitted
    card = _card()
    weights = export_best(trainer, module, tmp_path / "mlp.safetensors", card)
    assert weights == tmp_path / "mlp.safetensors" and weights.is_file()
    written = json.loads(weights.with_suffix(".json").read_text())
    best = float(trainer.checkpoint_callback.best_model_score)
    assert written["metrics"] == {
        "epochs": 3.0,
        "steps": 24.0,  # 3 epochs of 8 batches: the run took every step it planned
        "planned_steps": 24.0,
        "val_loss": pytest.approx(best),
    }
    assert card.metrics == {"epochs": 3.0}  # the caller's card is not modified

    # The exported weights are the best checkpoint's, loaded into the module by export_best.
    ckpt = torch.load(trainer.checkpoint_callback.best_model_path, weights_only=True)
    state, loaded_card = load_checkpoint(weights)
    assert set(state) == set(module.net.state_dict())
    for name, tensor in state.items():
        torch.testing.assert_close(tensor, ckpt["state_dict"][f"net.{name}"], rtol=0, atol=0)
    assert loaded_card.metrics["val_loss"] == pytest.approx(best)

    torch.manual_seed(123)
    fresh = _mlp()
    fresh.load_state_dict(state)
    x = torch.randn(10, 4)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), module.net(x), rtol=0, atol=0)


def test_export_best_needs_a_net_and_a_checkpoint(fitted, tmp_path) -> None:
    trainer, _, _ = fitted

    class NoNet(L.LightningModule):
        pass

    with pytest.raises(ValueError, match="net"):
        export_best(trainer, NoNet(), tmp_path / "x.safetensors", _card())
    unfitted = make_trainer(tmp_path / "unfitted", accelerator="cpu", progress=False)
    with pytest.raises(ValueError, match="no best checkpoint"):
        export_best(unfitted, _Regressor(), tmp_path / "x.safetensors", _card())


def test_load_checkpoint_refuses_pickles(tmp_path) -> None:
    net = _mlp()
    pickled = tmp_path / "net.safetensors"
    torch.save(net.state_dict(), pickled)
    pickled.with_suffix(".json").write_text("{}")
    with pytest.raises(InputError, match="pickle") as caught:
        load_checkpoint(pickled)
    assert caught.value.source == str(pickled)

    # A card that exists but weights that are missing, and weights whose card is missing.
    with pytest.raises(InputError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.safetensors")
    weights = save_checkpoint(net.state_dict(), tmp_path / "ok.safetensors", _card())
    weights.with_suffix(".json").unlink()
    with pytest.raises(InputError, match="model card is missing"):
        load_checkpoint(weights)


def test_atomic_write_keeps_old_content_when_the_body_raises(tmp_path) -> None:
    target = tmp_path / "result.txt"
    target.write_text("old\n")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(target) as handle:
            handle.write("half of the new")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt"]

    fresh = tmp_path / "sub" / "new.bin"
    with pytest.raises(RuntimeError):
        with atomic_write(fresh, "wb") as handle:
            handle.write(b"\x00\x01")
            raise RuntimeError("boom")
    assert not fresh.exists()
    assert list(fresh.parent.iterdir()) == []

    with atomic_write(target) as handle:
        handle.write("new\n")
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.txt", "sub"]


def test_input_error_is_one_line_naming_the_file(tmp_path) -> None:
    error = InputError(tmp_path / "map.fits", "Nside 100 is not a power of 2")
    assert str(error) == f"{tmp_path / 'map.fits'}: Nside 100 is not a power of 2"
    assert "\n" not in str(error)
    assert isinstance(error, ValueError)
    assert (error.source, error.problem) == (
        str(tmp_path / "map.fits"),
        "Nside 100 is not a power of 2",
    )


def test_atomic_write_gives_the_permissions_of_a_plainly_created_file(tmp_path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = tmp_path / "atomic.txt"
    with atomic_write(atomic) as handle:
        handle.write("x")
    assert atomic.stat().st_mode == plain.stat().st_mode


def test_make_trainer_without_any_progress_bar(tmp_path) -> None:
    """progress=None: no bar callback at all (a library fine-tuning inside another command)."""
    from lightning.pytorch.callbacks.progress import ProgressBar

    from convsuite.core_ops.training import make_trainer

    quiet = make_trainer(tmp_path, max_epochs=1, progress=None)
    loud = make_trainer(tmp_path, max_epochs=1, progress=False)
    assert not any(isinstance(c, ProgressBar) for c in quiet.callbacks)
    assert any(isinstance(c, ProgressBar) for c in loud.callbacks)


@dataclass(frozen=True)
class _WidthConfig(ModelConfig):
    width: int = 4


class _Tiny(Pretrained, nn.Module):
    config_class = _WidthConfig
    bundled_package = None
    default_weights = None

    def __init__(self, config: _WidthConfig) -> None:
        super().__init__()
        self.config = config
        self.layer = nn.Linear(2, config.width)


def test_init_from_loads_the_weights_and_returns_their_card(tmp_path) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    start = _Tiny(_WidthConfig())
    card = start.model_card(recipe="stage 1 cmd", training_data="set A", intended_use="tests")
    path = save_checkpoint(start.state_dict(), tmp_path / "start.safetensors", card)
    net = _Tiny(_WidthConfig())
    assert not torch.equal(net.layer.weight, start.layer.weight)
    loaded = init_from(net, path)
    assert torch.equal(net.layer.weight, start.layer.weight) and loaded.recipe == "stage 1 cmd"
    recipe, data = fine_tuned_card_text(loaded, path, "stage 2 cmd", "set B")
    assert recipe == "stage 2 cmd; starting weights start.safetensors, their recipe: stage 1 cmd"
    assert data == "set B; starting weights start.safetensors, their training data: set A"
    with pytest.raises(InputError, match=r"start.safetensors.*width 4 vs 8") as caught:
        init_from(_Tiny(_WidthConfig(width=8)), path)
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="missing.safetensors"):
        init_from(net, tmp_path / "missing.safetensors")


def test_export_best_records_a_run_cut_short(tmp_path) -> None:
    """A run that a cap stops early (here a callback, as ``max_time`` does) records fewer steps
    than planned: what the recipes check before bundling."""

    class StopAtFive(L.Callback):
        def on_train_batch_end(self, trainer, *_) -> None:  # noqa: ANN001, ANN002
            trainer.should_stop = trainer.global_step >= 5

    seed_everything(0)
    module = _Regressor()
    train, val = _loaders(0)
    trainer = make_trainer(
        tmp_path,
        max_epochs=3,
        accelerator="cpu",
        devices=1,
        progress=False,
        callbacks=[StopAtFive()],
    )
    trainer.fit(module, train, val)
    weights = export_best(trainer, module, tmp_path / "mlp.safetensors", _card())
    metrics = json.loads(weights.with_suffix(".json").read_text())["metrics"]
    assert metrics["steps"] == 5.0 and metrics["planned_steps"] == 24.0
