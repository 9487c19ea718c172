"""Lightning pieces every convsuite package reuses: seeding, a configured Trainer, weight export.

Convention: a convsuite ``LightningModule`` holds the network it trains as the attribute ``net``
(an ``nn.Module`` that is all the inference code needs); losses, metrics and optimizers live on the
LightningModule around it. :func:`export_best` relies on this: it ships ``module.net``'s weights,
so checkpoints load into the bare network without Lightning.

Typical recipe::

    seed_everything(0)
    trainer = make_trainer(out_dir, max_epochs=20, precision="bf16-mixed")
    trainer.fit(module, train_loader, val_loader)
    export_best(trainer, module, out_dir / "model.safetensors", card)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import ModelCard, save_checkpoint
from convsuite.core_ops.runtime import keep_freed_memory

__all__ = [
    "export_best",
    "fine_tuned_card_text",
    "init_from",
    "load_best",
    "make_trainer",
    "seed_everything",
]

_LOG = logging.getLogger(__name__)


def seed_everything(seed: int) -> int:
    """Seed Python, NumPy and torch (and dataloader workers) through Lightning; returns ``seed``.

    Deterministic algorithms stay off (``torch.use_deterministic_algorithms`` is not switched on):
    they make several CUDA kernels slower or unavailable, and same-seed runs already reproduce on
    CPU. Pass ``deterministic=True`` to :func:`make_trainer` for bitwise-reproducible GPU runs.

    Args:
        seed: the seed, recorded in the model card's recipe by the caller.
    """
    return L.seed_everything(seed, workers=True, verbose=False)


def make_trainer(
    out_dir: str | os.PathLike[str],
    max_epochs: int | None = 10,
    max_steps: int = -1,
    accelerator: str = "auto",
    devices: int | str | list[int] = "auto",
    strategy: str = "auto",
    num_nodes: int = 1,
    precision: str = "32-true",
    monitor: str = "val_loss",
    mode: str = "min",
    progress: bool | None = True,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """A Lightning ``Trainer`` writing its best checkpoint and CSV metrics under ``out_dir``.

    Wires in a :class:`~lightning.pytorch.callbacks.ModelCheckpoint` that keeps the single best
    checkpoint by ``monitor`` (``out_dir/checkpoints/best*.ckpt``), a rich progress bar (or a plain
    tqdm bar when ``progress`` is False, refreshed rarely so logs stay readable), a
    :class:`~lightning.pytorch.loggers.CSVLogger` in ``out_dir``, no sanity-check validation, and
    the model summary only when ``progress`` is on. Metrics are logged every step.
    ``accelerator``, ``devices``, ``strategy``, ``num_nodes`` and ``precision`` go straight to
    Lightning (the CLIs take them from :func:`convsuite.core_ops.cli.trainer_settings`), so the
    same recipe runs on a laptop CPU, one GPU or multi-node DDP.

    Args:
        out_dir: folder for checkpoints and ``csv/version_*/metrics.csv``; created if missing.
        max_epochs: epoch budget (None: unlimited, then ``max_steps`` must be set).
        max_steps: optimizer-step budget; -1 for none.
        accelerator: ``"cpu"``, ``"gpu"``, ``"auto"``...
        devices: device count or ids.
        strategy: ``"auto"``, ``"ddp"``...
        num_nodes: machines for multi-node DDP.
        precision: ``"32-true"``, ``"bf16-mixed"``, ``"16-mixed"``...
        monitor: the logged metric that picks the best checkpoint.
        mode: ``"min"`` or ``"max"`` for ``monitor``.
        progress: rich progress bar when True, a plain tqdm bar when False, no bar at all when
            None (a library fine-tuning inside another command).
        **trainer_kwargs: any other ``L.Trainer`` argument (e.g. ``max_time``,
            ``log_every_n_steps``); these override the defaults above.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep_freed_memory()
    checkpoint = ModelCheckpoint(
        dirpath=out_dir / "checkpoints",
        filename="best",
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        auto_insert_metric_name=False,
    )
    bars = {True: [RichProgressBar()], False: [TQDMProgressBar(refresh_rate=50)], None: []}
    settings: dict[str, Any] = {
        "default_root_dir": out_dir,
        "max_epochs": max_epochs,
        "max_steps": max_steps,
        "accelerator": accelerator,
        "devices": devices,
        "strategy": strategy,
        "num_nodes": num_nodes,
        "precision": precision,
        "logger": CSVLogger(out_dir, name="csv"),
        "num_sanity_val_steps": 0,
        "enable_model_summary": bool(progress),
        "log_every_n_steps": 1,
    }
    settings.update(trainer_kwargs)
    settings.setdefault("enable_progress_bar", progress is not None)
    callbacks = [checkpoint, *bars[progress], *settings.pop("callbacks", [])]
    return L.Trainer(callbacks=callbacks, **settings)


def _best_checkpoint(trainer: L.Trainer) -> ModelCheckpoint:
    callback = trainer.checkpoint_callback
    if not isinstance(callback, ModelCheckpoint) or not callback.best_model_path:
        raise ValueError(
            "trainer has no best checkpoint: build it with make_trainer and make sure the module "
            f"logs {getattr(callback, 'monitor', 'the monitored metric')!r} during validation"
        )
    return callback


def export_best(
    trainer: L.Trainer,
    module: L.LightningModule,
    path: str | os.PathLike[str],
    card: ModelCard,
    metrics: Mapping[str, float] | None = None,
) -> Path:
    """Load the best checkpoint into ``module`` and write ``module.net`` as safetensors + card.

    The Lightning checkpoint is read with ``torch.load(..., weights_only=True)`` (no arbitrary
    unpickling). The card written beside the weights is a copy of ``card`` whose ``metrics`` gain
    the run's ``steps`` (optimizer steps taken) and ``planned_steps`` (what ``max_steps`` and the
    epochs allowed; fewer steps taken means a time cap such as ``max_time`` ended the run, so a
    recipe can refuse to bundle a checkpoint other than the one it describes), ``metrics`` (e.g.
    training time, a held-out score) and the best monitored value under the monitor's name
    (``card`` itself is not modified). Everything goes into this one write: nothing re-reads or
    re-saves the checkpoint afterwards.

    Args:
        trainer: a trainer from :func:`make_trainer` after ``fit``.
        module: the LightningModule that was fitted; it must hold its network as ``module.net``.
        path: the ``.safetensors`` file to write; the card goes to the same name with ``.json``.
        card: what the weights are (architecture, config, recipe, data, intended use).
        metrics: further figures for the card (numbers).

    Returns:
        The weights path.

    Raises:
        ValueError: the trainer kept no best checkpoint, or ``module`` has no ``net``.
    """
    best = load_best(trainer, module)
    run = {"steps": float(trainer.global_step)}
    planned = float(trainer.estimated_stepping_batches)  # max_steps (-1) when nothing bounds it
    if math.isfinite(planned) and planned > 0:
        run["planned_steps"] = planned
    given = {k: float(v) for k, v in (metrics or {}).items()}
    filled = dataclasses.replace(card, metrics={**card.metrics, **given, **run, **best})
    _LOG.info("exporting %s (%s)", path, filled.metrics)
    return save_checkpoint(module.net.state_dict(), path, filled)


def load_best(trainer: L.Trainer, module: L.LightningModule) -> dict[str, float]:
    """Load the best checkpoint's weights into ``module``; return ``{monitor: best value}``.

    For recipes that need the best weights before they can write the card (fit a detector on the
    trained features, score a held-out set): call this, finish, then :func:`save_checkpoint` once.
    :func:`export_best` calls it too. The checkpoint is read with ``weights_only=True``.

    Raises:
        ValueError: the trainer kept no best checkpoint, or ``module`` has no ``net``.
    """
    if not isinstance(getattr(module, "net", None), torch.nn.Module):
        raise ValueError(
            f"{type(module).__name__} has no `net` submodule: convsuite LightningModules hold the "
            "network they train as `self.net`"
        )
    callback = _best_checkpoint(trainer)
    checkpoint = torch.load(callback.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(checkpoint["state_dict"])
    if callback.best_model_score is None:
        return {}
    return {str(callback.monitor): float(callback.best_model_score)}


def init_from(net: torch.nn.Module, init: str | os.PathLike[str]) -> ModelCard:
    """Start fine-tuning: load the weights ``init`` into ``net``; return their card.

    Args:
        net: a freshly built network with ``config`` and ``from_pretrained`` (core-ops' hub
            ``Pretrained``).
        init: a bundled weights name or a ``.safetensors`` checkpoint of the same architecture
            and config.

    Raises:
        InputError: anything :meth:`from_pretrained` refuses, or a config other than ``net``'s
            (one line naming the fields that differ).
    """
    start = type(net).from_pretrained(init)
    if start.config != net.config:
        ours, theirs = net.config.to_dict(), start.config.to_dict()
        fields = ", ".join(
            f"{key} {theirs.get(key)!r} vs {ours.get(key)!r}"
            for key in sorted(ours.keys() | theirs.keys())
            if ours.get(key) != theirs.get(key)
        )
        raise InputError(
            init,
            f"its architecture is not this {type(net).__name__}'s ({fields}): pick the "
            "--model/--preset it was trained with",
        )
    net.load_state_dict(start.state_dict())
    return start.card


def fine_tuned_card_text(
    start: ModelCard | None, init: str | os.PathLike[str] | None, recipe: str, training_data: str
) -> tuple[str, str]:
    """The ``recipe`` and ``training_data`` of a card for weights fine-tuned from ``start`` (the
    card :func:`init_from` returned): this run's text, then the starting weights' own, prefixed,
    so that a chain of fine-tunes keeps its whole history without hand edits. ``start`` None
    (trained from scratch): this run's text as it is."""
    if start is None or init is None:
        return recipe, training_data
    name = Path(init).name
    return (
        f"{recipe}; starting weights {name}, their recipe: {start.recipe}",
        f"{training_data}; starting weights {name}, their training data: {start.training_data}",
    )
