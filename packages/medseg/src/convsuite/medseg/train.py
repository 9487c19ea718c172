"""Training HybridGNet and its U-Net baseline with Lightning, and the recipe of the bundled weights.

The bundled weights (``weights/hybridgnet_small.*``, ``weights/unet_small.*``) come from
``shared/recipes/medseg_hybridgnet_small.sh`` in the repository::

    medseg cxr simulate --n 1000 --seed 7 --size 256 --out phantoms/train
    medseg cxr train phantoms/train --preset small --epochs 25 --out runs/hybridgnet
    medseg cxr train phantoms/train --init runs/hybridgnet/hybridgnet.safetensors \\
        --lr 1e-4 --epochs 4 --out runs/hybridgnet_finetune
    medseg cxr train phantoms/train --baseline --epochs 8 --out runs/unet

The model card written beside the weights records the command, the data, what the weights expect
(``inputs``: image size, organs) and produce (``outputs``), the training time and the best
validation figure.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss
from torch.utils.data import DataLoader

from convsuite.core_ops.hub import model_config
from convsuite.core_ops.io import ModelCard
from convsuite.core_ops.training import export_best, make_trainer, seed_everything
from convsuite.medseg.data.landmarks import ORGAN_SIZES
from convsuite.medseg.data.tensors import LandmarkTensors, load_landmark_tensors
from convsuite.medseg.models.hybridgnet import HybridGNet, HybridGNetConfig
from convsuite.medseg.models.pixel_baseline import UNetBaseline, UNetBaselineConfig

LANDMARK_MSE_SCALE = 1024**2


def augment_intensity(
    images: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Random per-image gamma (0.7-1.4), contrast (0.8-1.2) and brightness (+-0.1), as AugColor.

    Shapes: (B, 1, S, S) in [0, 1] -> same.
    """
    batch = images.shape[0]
    shape = (batch, 1, 1, 1)
    gamma = torch.empty(shape).uniform_(0.7, 1.4, generator=generator)
    contrast = torch.empty(shape).uniform_(0.8, 1.2, generator=generator)
    brightness = torch.empty(shape).uniform_(-0.1, 0.1, generator=generator)
    out = images.clamp(0, 1) ** gamma.to(images)
    return ((out - 0.5) * contrast.to(images) + 0.5 + brightness.to(images)).clamp(0, 1)


class HybridGNetModule(L.LightningModule):
    """Lightning wrapper: the paper's loss and optimizer (Adam, weight decay 1e-5, StepLR 0.9).

    Logs ``val_mse_px2``: landmark MSE per coordinate in px^2 at the 1024-pixel scale.

    Args:
        config: the network's architecture.
        lr: Adam learning rate (paper 1e-4 over 2500 epochs; the short CPU recipe uses more).
        weight_decay: Adam weight decay (paper 1e-5).
        lr_step_epochs: StepLR step size in epochs (gamma 0.9, as the reference).
        augment: random intensity augmentation in training.
    """

    def __init__(
        self,
        config: HybridGNetConfig,
        lr: float = 1e-4,
        weight_decay: float = 1e-5,
        lr_step_epochs: int = 50,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config.to_dict(), "lr": lr})
        self.net = HybridGNet(config)
        self.lr, self.weight_decay, self.lr_step_epochs = lr, weight_decay, lr_step_epochs
        self.augment = augment

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, targets = batch
        if self.augment:
            images = augment_intensity(images)
        losses = self.net.loss(self.net(images), targets)
        self.log_dict({f"train_{k}": v for k, v in losses.items()}, prog_bar=False)
        return losses["loss"]

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        images, targets = batch
        mse = F.mse_loss(self.net(images).landmarks, targets) * LANDMARK_MSE_SCALE
        self.log("val_mse_px2", mse, prog_bar=True, batch_size=images.shape[0])

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.Adam(
            self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, self.lr_step_epochs, gamma=0.9)
        return {"optimizer": optimizer, "lr_scheduler": scheduler}


class PixelBaselineModule(L.LightningModule):
    """Lightning wrapper of the U-Net baseline: Dice + BCE on organ masks, Adam.

    Logs ``val_dice`` (mean over organs).

    Args:
        config: the U-Net's architecture.
        lr: Adam learning rate.
        augment: random intensity augmentation in training.
    """

    def __init__(self, config: UNetBaselineConfig, lr: float = 1e-3, augment: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config.to_dict(), "lr": lr})
        self.net = UNetBaseline(config)
        self.dice = DiceLoss(sigmoid=True)
        self.lr, self.augment = lr, augment

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, masks = batch
        if self.augment:
            images = augment_intensity(images)
        logits = self.net(images)
        loss = self.dice(logits, masks) + F.binary_cross_entropy_with_logits(logits, masks)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        images, masks = batch
        self.log("val_dice", 1 - self.dice(self.net(images), masks), batch_size=images.shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)


@dataclass(frozen=True)
class TrainResult:
    """Where the exported weights are and what they reached."""

    weights: Path
    metrics: dict[str, float]
    seconds: float


def _split(data: LandmarkTensors, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, int(round(len(data) * val_fraction)))
    return order[n_val:], order[:n_val]


def train_hybridgnet(
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    preset: str = "small",
    epochs: int = 30,
    batch_size: int = 8,
    lr: float = 1e-3,
    seed: int = 0,
    val_fraction: float = 0.1,
    init: str | os.PathLike[str] | None = None,
    recipe: str = "",
    progress: bool = True,
    **trainer_kwargs: Any,
) -> TrainResult:
    """Train HybridGNet on a landmark-layout dataset and export ``out_dir/hybridgnet.safetensors``.

    Args:
        data_root: folder in the landmark dataset layout (``images/``, ``landmarks/<organ>/``).
        out_dir: Lightning logs, checkpoints and the exported weights with their model card.
        preset: "paper", "small" or "tiny" (``list_presets("hybridgnet")``).
        epochs: epoch budget.
        batch_size: images per step (the paper uses 4).
        lr: Adam learning rate. Paper 1e-4 for 2500 epochs; 1e-3 reaches phantom-level accuracy in
            tens of epochs, so it is the CPU recipe's default.
        seed: seeds the split, initialisation and sampling.
        val_fraction: share of samples held out to pick the best epoch.
        init: start from these weights (a bundled name such as "hybridgnet_small", or a HybridGNet
            ``.safetensors``) instead of a random initialisation; their architecture replaces
            ``preset``'s.
        recipe: the command line recorded in the model card.
        progress: progress bars.
        **trainer_kwargs: passed to :func:`convsuite.core_ops.training.make_trainer`
            (``accelerator``, ``devices``, ``strategy``, ``num_nodes``...).

    Raises:
        InputError: unknown preset, unreadable ``init`` weights or dataset.
    """
    started = time.perf_counter()
    seed_everything(seed)
    start = HybridGNet.from_pretrained(init) if init is not None else None
    config = start.config if start is not None else model_config("hybridgnet", preset)
    data = load_landmark_tensors(data_root, config.image_size, config.organs, progress)
    train_index, val_index = _split(data, val_fraction, seed)
    module = HybridGNetModule(config, lr=lr, lr_step_epochs=max(1, epochs // 5))
    if start is not None:
        module.net.load_state_dict(start.state_dict())
    trainer = make_trainer(
        out_dir, max_epochs=epochs, monitor="val_mse_px2", progress=progress, **trainer_kwargs
    )
    trainer.fit(
        module,
        DataLoader(data.subset(train_index).as_dataset(), batch_size, shuffle=True),
        DataLoader(data.subset(val_index).as_dataset(), 32),
    )
    card = module.net.model_card(
        recipe=recipe or f"train_hybridgnet({str(data_root)!r}, preset={preset!r})",
        training_data=_describe_data(data_root, len(train_index), len(val_index)),
        intended_use=PHANTOM_USE,
        inputs=_card_inputs(config.image_size, config.organs),
        outputs={
            "landmarks": {organ: ORGAN_SIZES[organ] for organ in config.organs},
            "coordinates": "(x, y) as fractions of the model input side, in organ order",
        },
    )
    return _export(trainer, module, Path(out_dir) / "hybridgnet.safetensors", card, started)


def train_pixel_baseline(
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    preset: str = "small",
    epochs: int = 12,
    batch_size: int = 8,
    seed: int = 0,
    val_fraction: float = 0.1,
    init: str | os.PathLike[str] | None = None,
    recipe: str = "",
    progress: bool = True,
    **trainer_kwargs: Any,
) -> TrainResult:
    """Train the U-Net baseline on the same data; export ``out_dir/unet.safetensors``.

    Args:
        data_root: folder in the landmark dataset layout.
        out_dir: Lightning logs, checkpoints and the exported weights with their model card.
        preset: "paper", "small" or "tiny" (``list_presets("unet_baseline")``).
        epochs: epoch budget.
        batch_size: images per step.
        seed: seeds the split, initialisation and sampling.
        val_fraction: share of samples held out to pick the best epoch.
        init: continue from U-Net baseline weights (a bundled name such as "unet_small", or a
            ``.safetensors`` written by this function); their architecture replaces ``preset``'s.
        recipe: the command line recorded in the model card.
        progress: progress bars.
        **trainer_kwargs: passed to :func:`convsuite.core_ops.training.make_trainer`.

    Raises:
        InputError: unknown preset, unreadable ``init`` weights or dataset.
    """
    started = time.perf_counter()
    seed_everything(seed)
    start = UNetBaseline.from_pretrained(init) if init is not None else None
    config = start.config if start is not None else model_config("unet_baseline", preset)
    data = load_landmark_tensors(data_root, config.image_size, config.organs, progress)
    masks = data.organ_masks(config.organs)
    train_index, val_index = _split(data, val_fraction, seed)
    module = PixelBaselineModule(config)
    if start is not None:
        module.net.load_state_dict(start.state_dict())
    trainer = make_trainer(
        out_dir,
        max_epochs=epochs,
        monitor="val_dice",
        mode="max",
        progress=progress,
        **trainer_kwargs,
    )
    trainer.fit(
        module,
        DataLoader(
            torch.utils.data.TensorDataset(data.images[train_index], masks[train_index]),
            batch_size,
            shuffle=True,
        ),
        DataLoader(torch.utils.data.TensorDataset(data.images[val_index], masks[val_index]), 32),
    )
    card = module.net.model_card(
        recipe=recipe or f"train_pixel_baseline({str(data_root)!r}, preset={preset!r})",
        training_data=_describe_data(data_root, len(train_index), len(val_index)),
        intended_use="Pixel baseline for comparisons with HybridGNet. " + PHANTOM_USE,
        inputs=_card_inputs(config.image_size, config.organs),
        outputs={
            "masks": list(config.organs),
            "activation": "independent sigmoid per organ channel, threshold 0.5",
        },
    )
    return _export(trainer, module, Path(out_dir) / "unet.safetensors", card, started)


def _card_inputs(image_size: int, organs: Sequence[str]) -> dict[str, Any]:
    """The model card's ``inputs``: what both networks expect of a radiograph."""
    return {
        "image_size": image_size,
        "organs": list(organs),
        "channels": 1,
        "intensity_range": [0.0, 1.0],
        "preprocessing": (
            "crop to the non-zero box, zero-pad to a centred square, bilinear resize to image_size"
        ),
    }


def _export(
    trainer: L.Trainer, module: L.LightningModule, path: Path, card: ModelCard, started: float
) -> TrainResult:
    """Write the best weights with their card in one go; the figures reached, without re-reading."""
    seconds = time.perf_counter() - started
    metrics = {"train_seconds": round(seconds, 1)}
    weights = export_best(trainer, module, path, card, metrics=metrics)
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_score", None)
    if best is not None:
        metrics[str(callback.monitor)] = float(best)
    return TrainResult(weights, metrics, seconds)


def _describe_data(data_root: str | os.PathLike[str], n_train: int, n_val: int) -> str:
    """The model card's ``training_data``: the split, and the simulator settings when phantoms."""
    text = f"{n_train} images of {data_root} (validation {n_val})"
    meta = Path(data_root) / "meta.json"
    if meta.is_file():
        settings = json.loads(meta.read_text())
        text += (
            f", simulated by {settings['simulator']} with seed {settings['seed']}, "
            f"n {settings['n']}, options {settings['options']}"
        )
    return text


PHANTOM_USE = (
    "Trained on simulated chest-radiograph phantoms (convsuite.medseg.data.phantom): good for "
    "demos, tests and as a starting point. Not for real radiographs: for clinical images, train on "
    "a real landmark dataset (Chest-xray-landmark, JSRT) with `medseg cxr train`."
)
