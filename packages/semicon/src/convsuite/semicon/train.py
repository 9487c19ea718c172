"""Training the wafer classifiers with Lightning, and :func:`fit_monitor`, the whole recipe.

:class:`WaferClassifierModule` trains either network on lists of :class:`WaferMap` (a
:class:`WaferMapDataset` and the :class:`WaferCollate` function): cross-entropy, AdamW, a cosine
learning-rate decay, and random symmetries of the square as augmentation (rotations by 90 degrees
and transposes map a wafer onto itself and keep every pattern's class).

:func:`fit_monitor` trains the classifier on the known classes, keeps the epoch with the lowest
validation loss, fits the novelty detector (by default a
:class:`~convsuite.semicon.openset.FusedNoveltyDetector`: class-conditional Gaussians on the learned
features and, apart, on the map statistics; it also gives the monitor's class) on the training maps'
novelty features, sets its threshold on the validation maps (known classes only) at the chosen
false-alarm rate, and saves the :class:`~convsuite.semicon.monitor.WaferMonitor` (weights, model
card, detector JSON), each file written once.
"""

from __future__ import annotations

import collections
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import model_config
from convsuite.core_ops.io import save_checkpoint
from convsuite.core_ops.training import load_best, make_trainer, seed_everything
from convsuite.semicon.data import PATTERNS, WaferMap
from convsuite.semicon.dense_baseline import DenseWaferConfig, DenseWaferNet, batch_binned
from convsuite.semicon.metrics import closed_set_accuracy, macro_f1
from convsuite.semicon.model import SparseWaferNet, WaferNetConfig, batch_wafer_maps
from convsuite.semicon.monitor import WaferMonitor, WaferNet, card_outputs, predict_batches
from convsuite.semicon.openset import Detector, FusedNoveltyDetector, NoveltyDetector

__all__ = [
    "WaferClassifierModule",
    "WaferCollate",
    "WaferMapDataset",
    "card_inputs",
    "fit_monitor",
    "known_classes",
]

_LOG = logging.getLogger(__name__)

NetConfig = WaferNetConfig | DenseWaferConfig

DIE_PITCH_MM = 1.0
"""Cells at least this large (mm) are dies: maps with such a pitch are die-level (WM-811K), not
full-resolution defect lists (tens of um per cell)."""


def known_classes(maps: Sequence[WaferMap]) -> tuple[str, ...]:
    """The labels present in ``maps``, in :data:`PATTERNS` order (other names sorted after).

    Raises:
        InputError: a map has no label.
    """
    labels = set()
    for wafer in maps:
        if wafer.label is None:
            raise InputError(wafer.name or "wafer map", "training maps must be labelled")
        labels.add(wafer.label)
    return tuple(p for p in PATTERNS if p in labels) + tuple(sorted(labels - set(PATTERNS)))


class WaferMapDataset(Dataset):
    """Labelled wafer maps as ``(WaferMap, class index)`` items.

    Args:
        maps: the maps; every label must be in ``classes``.
        classes: class names in logit order.
    """

    def __init__(self, maps: Sequence[WaferMap], classes: Sequence[str]) -> None:
        index = {name: i for i, name in enumerate(classes)}
        unknown = sorted({str(w.label) for w in maps if w.label not in index})
        if unknown:
            raise InputError("maps", f"labels {unknown} are not among the classes {list(classes)}")
        self.maps = list(maps)
        self.targets = [index[w.label] for w in self.maps]  # type: ignore[index]

    def __len__(self) -> int:
        return len(self.maps)

    def __getitem__(self, i: int) -> tuple[WaferMap, int]:
        return self.maps[i], self.targets[i]


class WaferCollate:
    """Collate ``(WaferMap, class)`` items into a network batch and (B,) int64 targets.

    A picklable class (DataLoader workers). Augmentation draws one of the 8 symmetries of the
    square per map from torch's global generator (seeded by ``seed_everything``).

    Args:
        config: the network's config: a :class:`WaferNetConfig` gives a SparseTensor
            (:func:`batch_wafer_maps`), a :class:`DenseWaferConfig` binned images
            (:func:`batch_binned`).
        augment: random rotations / transposes.
    """

    def __init__(self, config: NetConfig, augment: bool = False) -> None:
        self.dense = isinstance(config, DenseWaferConfig)
        self.size = config.bins if isinstance(config, DenseWaferConfig) else config.grid
        self.augment = augment

    def __call__(self, items: Sequence[tuple[WaferMap, int]]) -> tuple[Any, torch.Tensor]:
        maps = [wafer for wafer, _ in items]
        targets = torch.tensor([target for _, target in items], dtype=torch.int64)
        transforms = torch.randint(0, 8, (len(maps),)).tolist() if self.augment else None
        if self.dense:
            return batch_binned(maps, self.size, transforms), targets
        return batch_wafer_maps(maps, self.size, transforms), targets


def card_inputs(config: NetConfig, maps: Sequence[WaferMap]) -> dict[str, Any]:
    """The model card's ``inputs``: what maps the weights were trained on, and so expect.

    Returns:
        ``grid`` (sparse network: side of its input grid, cells) or ``bins`` (dense baseline: side
        of the binned image); ``pitch_mm`` and ``diameter_mm``, the medians over ``maps``;
        ``die_level``, whether those maps are die maps (pitch >= :data:`DIE_PITCH_MM`, as
        WM-811K) rather than full-resolution defect lists.
    """
    pitch = float(np.median([wafer.pitch_mm for wafer in maps]))
    size = {"bins": config.bins} if isinstance(config, DenseWaferConfig) else {"grid": config.grid}
    return {
        **size,
        "pitch_mm": pitch,
        "diameter_mm": float(np.median([wafer.diameter_mm for wafer in maps])),
        "die_level": pitch >= DIE_PITCH_MM,
    }


def _network(config: NetConfig) -> WaferNet:
    if isinstance(config, DenseWaferConfig):
        return DenseWaferNet(config)
    if isinstance(config, WaferNetConfig):
        return SparseWaferNet(config)
    raise ValueError(f"config must be a WaferNetConfig or DenseWaferConfig, got {type(config)}")


class WaferClassifierModule(L.LightningModule):
    """Lightning wrapper of a wafer classifier: cross-entropy, AdamW, cosine decay per epoch.

    Holds the network as ``self.net`` (a :class:`SparseWaferNet` for a :class:`WaferNetConfig`, a
    :class:`DenseWaferNet` for a :class:`DenseWaferConfig`). Logs ``train_loss``, ``val_loss`` and
    ``val_acc``.

    Args:
        config: the network's architecture (its ``classes`` fix the logits).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        label_smoothing: cross-entropy label smoothing.
    """

    def __init__(
        self,
        config: NetConfig,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.net = _network(config)
        self.save_hyperparameters(
            {
                "architecture": type(self.net).__name__,
                "config": config.to_dict(),
                "lr": lr,
                "weight_decay": weight_decay,
                "label_smoothing": label_smoothing,
            }
        )
        self.lr, self.weight_decay, self.label_smoothing = lr, weight_decay, label_smoothing

    def forward(self, x: Any) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[Any, torch.Tensor], _: int) -> torch.Tensor:
        x, targets = batch
        loss = F.cross_entropy(self.net(x), targets, label_smoothing=self.label_smoothing)
        self.log("train_loss", loss, batch_size=len(targets), prog_bar=True)
        return loss

    def validation_step(self, batch: tuple[Any, torch.Tensor], _: int) -> None:
        x, targets = batch
        logits = self.net(x)
        size = len(targets)
        self.log("val_loss", F.cross_entropy(logits, targets), batch_size=size, prog_bar=True)
        accuracy = (logits.argmax(1) == targets).float().mean()
        self.log("val_acc", accuracy, batch_size=size, prog_bar=True)

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        epochs = max(1, int(self.trainer.max_epochs or 1))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=epochs, eta_min=self.lr * 0.02
        )
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


def _describe(maps: Sequence[WaferMap]) -> str:
    counts = collections.Counter(w.label for w in maps)
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: str(kv[0])))


def fit_monitor(
    train_maps: Sequence[WaferMap],
    val_maps: Sequence[WaferMap],
    config: NetConfig | None = None,
    epochs: int = 20,
    out_dir: str | os.PathLike[str] | None = None,
    name: str = "monitor",
    batch_size: int = 16,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    augment: bool = True,
    novelty: str = "classes",
    n_components: int | str | None = None,
    covariance_type: str = "full",
    false_alarm_rate: float = 0.05,
    num_workers: int = 0,
    progress: bool = False,
    recipe: str = "",
    training_data: str = "",
    **trainer_kwargs: Any,
) -> WaferMonitor:
    """Train a classifier on the known classes, fit the novelty detector, save the monitor.

    Args:
        train_maps: labelled maps of the known classes (their labels define the classes).
        val_maps: labelled held-out maps: they pick the best epoch and set the novelty threshold.
            Maps whose label is not a training class are left out of both.
        config: the network (a :class:`WaferNetConfig` or, for the binned baseline, a
            :class:`DenseWaferConfig`); its ``classes`` are replaced by the training labels.
            Default: ``model_config("wafer_sparse", "small")``.
        epochs: epoch budget.
        out_dir: where Lightning logs and the monitor go (``<name>.safetensors``, ``.json``,
            ``.novelty.json``); None: a temporary folder, deleted afterwards.
        name: stem of the monitor's files.
        batch_size: maps per optimizer step.
        lr, weight_decay: AdamW settings.
        seed: seeds initialisation, shuffling, augmentation and the mixture.
        augment: random 90-degree rotations and transposes of the training maps.
        novelty: the novelty detector. ``"classes"``: a
            :class:`~convsuite.semicon.openset.FusedNoveltyDetector`, class-conditional Gaussians
            with a shared covariance on the learned features and (apart) on the map statistics,
            scores standardised and summed; it also gives the monitor's class (its posterior).
            ``"mixture"``: a :class:`~convsuite.semicon.openset.NoveltyDetector` mixture fitted
            by EM on all novelty features (``n_components``, ``covariance_type``); the network's
            head gives the class.
        n_components: with ``"mixture"``, its components; None: one per known class (with few training maps
            per class, BIC prefers a single Gaussian, which separates novel maps worse); "bic":
            chosen by BIC (see :class:`NoveltyDetector`).
        covariance_type: with ``"mixture"``, the :class:`NoveltyDetector`'s.
        false_alarm_rate: share of known validation maps the threshold flags.
        num_workers: DataLoader worker processes (collation runs there).
        progress: progress bars.
        recipe: the command line recorded in the model card.
        training_data: what the maps are (simulator, seed, files), recorded in the model card.
        **trainer_kwargs: passed to :func:`convsuite.core_ops.training.make_trainer`
            (``accelerator``, ``devices``, ``strategy``, ``num_nodes``, ``precision``...).

    Returns:
        The fitted monitor; its card's ``metrics`` hold ``val_loss`` (best epoch),
        ``val_accuracy``, ``val_macro_f1``, ``val_false_alarm_rate`` and ``train_seconds``; its
        ``inputs`` come from :func:`card_inputs`, its ``outputs`` from
        :func:`~convsuite.semicon.monitor.card_outputs`.
    """
    started = time.perf_counter()
    if novelty not in ("classes", "mixture"):
        raise ValueError(f"novelty must be 'classes' or 'mixture', got {novelty!r}")
    classes = known_classes(train_maps)
    if len(classes) < 2:
        raise InputError("train_maps", f"need at least 2 known classes, got {list(classes)}")
    val_known = [w for w in val_maps if w.label in classes]
    if len(val_known) < len(val_maps):
        _LOG.info("left %d validation maps of unknown classes out", len(val_maps) - len(val_known))
    if not val_known:
        raise InputError("val_maps", f"no validation map of the known classes {list(classes)}")
    config = (config or model_config("wafer_sparse", "small")).replace(classes=classes)
    seed_everything(seed)
    module = WaferClassifierModule(config, lr=lr, weight_decay=weight_decay)
    loader_options = {"batch_size": batch_size, "num_workers": num_workers}
    train_loader = DataLoader(
        WaferMapDataset(train_maps, classes),
        shuffle=True,
        collate_fn=WaferCollate(config, augment=augment),
        **loader_options,
    )
    val_loader = DataLoader(
        WaferMapDataset(val_known, classes), collate_fn=WaferCollate(config), **loader_options
    )
    with tempfile.TemporaryDirectory(prefix="wafer-monitor-") as scratch:
        run_dir = Path(out_dir) if out_dir is not None else Path(scratch)
        trainer = make_trainer(
            run_dir, max_epochs=epochs, monitor="val_loss", progress=progress, **trainer_kwargs
        )
        trainer.fit(module, train_loader, val_loader)
        best = load_best(trainer, module)  # {"val_loss": ...}
        net = module.net.eval()
        train_features, _ = _features(net, train_maps, batch_size)
        val_features, val_logits = _features(net, val_known, batch_size)
        detector: Detector
        if novelty == "classes":
            labels = np.array(WaferMapDataset(train_maps, classes).targets)
            detector = FusedNoveltyDetector(
                net.novelty_blocks, false_alarm_rate=false_alarm_rate
            ).fit(train_features, val_features, labels)
            val_probabilities = detector.posterior(val_features)
        else:
            detector = NoveltyDetector(
                n_components=len(classes) if n_components is None else n_components,
                covariance_type=covariance_type,
                false_alarm_rate=false_alarm_rate,
                seed=seed,
            ).fit(train_features, val_features)
            val_probabilities = val_logits
        predicted = [classes[i] for i in val_probabilities.argmax(1)]
        truth = [w.label for w in val_known]
        metrics = {
            "val_accuracy": closed_set_accuracy(truth, predicted),
            "val_macro_f1": macro_f1(truth, predicted),
            "val_false_alarm_rate": float(np.mean(detector.predict(val_features))),
            "train_seconds": round(time.perf_counter() - started, 1),
            **best,
        }
        novelty = run_dir / f"{name}.novelty.json"
        card = net.model_card(
            recipe=recipe
            or f"fit_monitor(<{len(train_maps)} maps>, <{len(val_known)} maps>, epochs={epochs}, "
            f"batch_size={batch_size}, lr={lr}, seed={seed})",
            training_data=(training_data + "; " if training_data else "")
            + f"train: {_describe(train_maps)}; validation: {_describe(val_known)}",
            intended_use=(
                "Classifying wafer defect maps into the known patterns "
                f"{', '.join(classes)} and flagging novel patterns. Trained on the maps described "
                "in training_data; retrain on your own fab's labelled maps before relying on it."
            ),
            inputs=card_inputs(config, train_maps),
            outputs=card_outputs(net, detector),
            files={"novelty": novelty.name},
            metrics=metrics,
        )
        detector.save(novelty)  # first: the card never names a missing file
        save_checkpoint(net.state_dict(), run_dir / f"{name}.safetensors", card)
    return WaferMonitor(net, detector, card)


def _features(
    net: WaferNet, maps: Sequence[WaferMap], batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """(N, feature_dim) features and (N, n_classes) logits of ``maps``, in order."""
    parts = list(predict_batches(net, maps, batch_size))
    return np.concatenate([f for _, f, _ in parts]), np.concatenate([g for _, _, g in parts])
