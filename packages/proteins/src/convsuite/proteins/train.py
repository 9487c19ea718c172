"""Training S-GCN (and the GCN baseline) on decoy sets with Lightning.

The paper's recipe (Igashov et al. 2021, section 2.5): mean squared error between predicted and
true per-residue scores, Adam with learning rate 1e-3 and L2 regularization 3e-3 (Adam's coupled
``weight_decay``), mini-batches of whole models. The bundled weights' recipe is
``shared/recipes/proteins_sgcn.sh``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from convsuite.core_ops.io import ModelCard, save_checkpoint
from convsuite.core_ops.training import load_best, make_trainer, seed_everything
from convsuite.proteins.data.batch import GraphBatch, collate
from convsuite.proteins.data.decoyset import DecoySet
from convsuite.proteins.infer import predict_graphs
from convsuite.proteins.metrics import assessment_metrics

__all__ = ["QualityModule", "decoy_loader", "fit"]


class QualityModule(L.LightningModule):
    """MSE on per-residue scores; validation logs ``val_loss`` and the CASP-style correlations.

    Args:
        net: the network (kept as ``self.net``, what :func:`~convsuite.core_ops.training.export_best`
            ships).
        lr: Adam learning rate (paper: 1e-3).
        weight_decay: L2 regularization (paper: 3e-3).
    """

    def __init__(self, net: torch.nn.Module, lr: float = 1e-3, weight_decay: float = 3e-3) -> None:
        super().__init__()
        self.net = net
        self.lr, self.weight_decay = lr, weight_decay
        self._val: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def _loss(self, batch: GraphBatch) -> tuple[torch.Tensor, torch.Tensor]:
        predicted = self.net(batch)
        known = torch.isfinite(batch.target)
        return torch.mean((predicted[known] - batch.target[known]) ** 2), predicted

    def training_step(self, batch: GraphBatch, batch_index: int) -> torch.Tensor:
        loss, _ = self._loss(batch)
        self.log("train_loss", loss, batch_size=batch.num_graphs, prog_bar=True)
        return loss

    def validation_step(self, batch: GraphBatch, batch_index: int) -> None:
        loss, predicted = self._loss(batch)
        self.log("val_loss", loss, batch_size=batch.num_graphs, prog_bar=True)
        self._val.append(
            (predicted.cpu().numpy(), batch.target.cpu().numpy(), batch.graph.cpu().numpy())
        )

    def on_validation_epoch_end(self) -> None:
        predicted, true, names = [], [], []
        for scores, targets, graph in self._val:
            splits = np.flatnonzero(np.diff(graph)) + 1
            predicted += np.split(scores, splits)
            true += np.split(targets, splits)
            names += ["all"] * (len(splits) + 1)
        self._val.clear()
        metrics = assessment_metrics(predicted, true, names)
        self.log("val_residue_pearson", metrics["residue_pearson_per_model"])
        self.log("val_global_pearson", metrics["global_pearson"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    def transfer_batch_to_device(self, batch: GraphBatch, device: torch.device, index: int) -> Any:
        return batch.to(device)


def decoy_loader(decoys: DecoySet, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """Batches of whole decoys (block-diagonal graphs) with their per-residue targets."""
    return DataLoader(
        list(range(len(decoys))),
        batch_size=batch_size,
        shuffle=shuffle,
        generator=torch.Generator().manual_seed(seed),
        collate_fn=lambda rows: collate(
            [decoys.graphs[i] for i in rows], [decoys.targets[i] for i in rows]
        ),
    )


def fit(
    net: torch.nn.Module,
    train: DecoySet,
    val: DecoySet,
    out_dir: str | os.PathLike[str],
    card: ModelCard,
    name: str,
    epochs: int = 30,
    batch_size: int = 8,
    lr: float = 1e-3,
    weight_decay: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
    **trainer_settings: Any,
) -> tuple[Path, dict[str, float]]:
    """Train ``net`` on ``train``, keep the weights of the best ``val_loss`` epoch, write them.

    Writes ``out_dir/<name>.safetensors`` and its card (metrics: best val_loss and the
    validation correlations of the kept weights).

    Returns:
        the weights path and the validation metrics.
    """
    seed_everything(seed)
    out_dir = Path(out_dir)
    module = QualityModule(net, lr, weight_decay)
    trainer = make_trainer(
        out_dir, max_epochs=epochs, progress=progress, enable_checkpointing=True, **trainer_settings
    )
    trainer.fit(
        module,
        decoy_loader(train, batch_size, shuffle=True, seed=seed),
        decoy_loader(val, batch_size, shuffle=False),
    )
    best = load_best(trainer, module)
    predicted = predict_graphs(module.net.cpu(), val.graphs)
    metrics = {
        f"val_{k}": v for k, v in assessment_metrics(predicted, val.targets, val.natives).items()
    }
    metrics.update(best)
    card = dataclasses.replace(card, metrics={**card.metrics, **metrics})
    path = save_checkpoint(module.net.state_dict(), out_dir / f"{name}.safetensors", card)
    return path, metrics
