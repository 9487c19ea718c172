"""Training the VAE with Lightning: on simulated bulk cubes (``eels-anomaly train``), on a user's
bulk region (``eels-anomaly fit``), and the fine-tuning on a cube's own pixels that ``detect`` does
by default.

Data are spatial shards (24 x 24 pixels, the reference's) cut at random from preprocessed cubes;
the last ``shard`` rows of every cube are held out for validation. Fine-tuning on a cube that holds
anomalies uses the trimmed loss (:func:`~convsuite.materials.model.vae_loss` with ``trim``): the
pixels the network reconstructs worst in each batch (anomalies are rare) are left out, so they
are not learned.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.training import load_best, make_trainer, seed_everything
from convsuite.materials.model import EELSVAE, vae_loss

__all__ = ["ShardSet", "VAEModule", "fit_vae", "split_rows"]

SHARD = 24


def split_rows(cube: np.ndarray, shard: int = SHARD) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out last ``shard`` rows) of a (y, x, E) cube.

    Raises:
        InputError: the cube is too small for a shard of each.
    """
    if cube.shape[0] < 2 * shard or cube.shape[1] < shard:
        raise InputError(
            "cube",
            f"{cube.shape[0]} x {cube.shape[1]} pixels: training needs at least "
            f"{2 * shard} x {shard}",
        )
    return cube[:-shard], cube[-shard:]


class ShardSet(Dataset):
    """Random (or, for validation, tiled) ``shard`` x ``shard`` crops of preprocessed cubes.

    Items: (1, shard, shard, E) float32 tensors in [0, 1].

    Args:
        cubes: (y, x, E) float32 arrays on the network's grid.
        count: crops per epoch (None: the tiles, in order).
        seed: seeds the crop positions (item ``i`` of epoch-independent stream).
    """

    def __init__(
        self,
        cubes: Sequence[np.ndarray],
        count: int | None = None,
        shard: int = SHARD,
        seed: int = 0,
    ) -> None:
        self.cubes = [np.ascontiguousarray(c, dtype=np.float32) for c in cubes]
        self.shard = shard
        if count is None:
            self.positions = [
                (k, y, x)
                for k, c in enumerate(self.cubes)
                for y in range(0, c.shape[0] - shard + 1, shard)
                for x in range(0, c.shape[1] - shard + 1, shard)
            ]
        else:
            rng = np.random.default_rng(seed)
            picks = rng.integers(len(self.cubes), size=count)
            self.positions = [
                (
                    int(k),
                    int(rng.integers(self.cubes[k].shape[0] - shard + 1)),
                    int(rng.integers(self.cubes[k].shape[1] - shard + 1)),
                )
                for k in picks
            ]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: int) -> torch.Tensor:
        k, y, x = self.positions[index]
        crop = self.cubes[k][y : y + self.shard, x : x + self.shard]
        return torch.from_numpy(np.ascontiguousarray(crop))[None]


class VAEModule(L.LightningModule):
    """The VAE's training loop: Adam, Bernoulli NLL + beta KL (trimmed when ``trim`` > 0).

    Args:
        net: the network (kept as ``self.net`` for :func:`~convsuite.core_ops.training.export_best`).
        lr: Adam's learning rate.
        trim: fraction of worst-reconstructed pixels left out of each batch's loss.
        freeze_norms: keep the batch norms' statistics as they are (eval mode) while the weights
            train: fine-tuning on one cube in batches of 4 shards otherwise replaces the
            pretrained statistics with noisy ones.
        kl_warmup: training steps over which the KL weight rises linearly from 0 to the
            config's ``beta`` (0: ``beta`` from the start). The objective reached is the paper's
            (BCE + 1.2 KL); the warm-up lets the encoder use its latent before the KL term
            prunes it (without it, 34 of the 40 latent dimensions of the first bundled network
            carried < 0.05 nats). Validation always uses the full ``beta``.
    """

    def __init__(
        self,
        net: EELSVAE,
        lr: float = 2e-3,
        trim: float = 0.0,
        freeze_norms: bool = False,
        kl_warmup: int = 0,
    ) -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.trim = trim
        self.freeze_norms = freeze_norms
        self.kl_warmup = kl_warmup

    def beta(self, stage: str) -> float:
        """The KL weight of a ``stage`` step (``train`` ramps up over ``kl_warmup`` steps)."""
        full = self.net.config.beta
        if stage != "train" or self.kl_warmup <= 0:
            return full
        return full * min(1.0, self.global_step / self.kl_warmup)

    def on_train_batch_start(self, batch: torch.Tensor, batch_idx: int) -> None:
        if self.freeze_norms:  # Lightning puts the module in train mode before each epoch
            for module in self.net.modules():
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                    module.eval()

    def _step(self, batch: torch.Tensor, stage: str) -> torch.Tensor:
        beta = self.beta(stage)
        loss, nll, kl = vae_loss(self.net(batch), batch, beta, self.trim)
        self.log(f"{stage}_loss", loss, prog_bar=True, batch_size=batch.shape[0])
        self.log(f"{stage}_nll", nll, batch_size=batch.shape[0])
        self.log(f"{stage}_kl", kl, batch_size=batch.shape[0])
        self.log(f"{stage}_beta", beta, batch_size=batch.shape[0])
        return loss

    def training_step(self, batch: torch.Tensor, _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: torch.Tensor, _: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def fit_vae(
    net: EELSVAE,
    cubes: Sequence[np.ndarray],
    out_dir: str | os.PathLike[str],
    epochs: int = 10,
    shards_per_epoch: int = 256,
    batch_size: int = 8,
    lr: float = 2e-3,
    trim: float = 0.0,
    max_seconds: float | None = None,
    seed: int = 0,
    progress: bool | None = False,
    trainer_options: dict[str, Any] | None = None,
    freeze_norms: bool = False,
    kl_warmup_epochs: int = 0,
) -> tuple[L.Trainer, VAEModule, dict[str, float]]:
    """Train ``net`` on shards of preprocessed cubes; the best weights (by held-out loss) stay in it.

    Args:
        net: the network to train (fresh or pretrained).
        cubes: (y, x, E) float32 cubes in [0, 1] on ``net``'s grid (``Prepared.network_view``),
            each at least 48 x 24 pixels; the last 24 rows of each are held out.
        out_dir: Lightning's folder (checkpoints, CSV metrics).
        epochs: passes of ``shards_per_epoch`` random shards.
        shards_per_epoch: random crops per epoch.
        batch_size: shards per step.
        lr: Adam's learning rate.
        trim: see :class:`VAEModule`.
        max_seconds: wall-clock budget of the fit (None: none).
        seed: seeds the shards and initialization noise.
        progress: rich progress bar (CLIs on a terminal); False: a plain, rarely refreshed bar;
            None: no bar at all (fine-tuning inside ``detect``).
        trainer_options: accelerator/devices/strategy/num_nodes (``trainer_settings``).
        freeze_norms: see :class:`VAEModule`.
        kl_warmup_epochs: epochs over which the KL weight rises from 0 to ``beta`` (see
            :class:`VAEModule`); the best checkpoint is picked by the held-out loss at the full
            ``beta``, the paper's objective.

    Returns:
        (trainer, module, {"val_loss": best held-out loss, "seconds": fit time}).
    """
    import time

    seed_everything(seed)
    train_parts, val_parts = zip(*(split_rows(c) for c in cubes), strict=True)
    train = DataLoader(ShardSet(train_parts, shards_per_epoch, seed=seed), batch_size, shuffle=True)
    val = DataLoader(ShardSet(val_parts), batch_size)
    steps_per_epoch = len(train)
    module = VAEModule(
        net,
        lr=lr,
        trim=trim,
        freeze_norms=freeze_norms,
        kl_warmup=kl_warmup_epochs * steps_per_epoch,
    )
    options = {"accelerator": "cpu", "devices": 1, **(trainer_options or {})}
    if max_seconds is not None:
        options["max_time"] = {"seconds": max(1.0, float(max_seconds))}
    trainer = make_trainer(Path(out_dir), max_epochs=epochs, progress=progress, **options)
    started = time.perf_counter()
    trainer.fit(module, train, val)
    seconds = time.perf_counter() - started
    best = load_best(trainer, module)
    module.net.eval()
    return trainer, module, {**best, "seconds": seconds}


def bulk_cubes(
    grid_start: float,
    grid_stop: float,
    n_energy: int,
    count: int,
    size: int,
    seed: int,
    spatial_mean: bool = True,
) -> list[np.ndarray]:
    """``count`` simulated defect-free cubes (size x size), preprocessed onto the grid as a
    network with ``spatial_mean`` is fed (:meth:`Prepared.network_view`).

    Seeds ``seed``, ``seed + 1``, ...; every normal variation of the simulator is on (second
    phase, mixed valence, thickness wedge, drift).
    """
    from convsuite.materials.data.io import energy_axis
    from convsuite.materials.data.preprocess import EnergyGrid, prepare
    from convsuite.materials.data.simulate import simulate_cube

    grid = EnergyGrid(grid_start, grid_stop, n_energy)
    cubes = []
    for k in range(count):
        cube = simulate_cube((size, size), seed=seed + k, anomalies=())
        cubes.append(prepare(cube.data, energy_axis(cube), grid).network_view(spatial_mean))
    return cubes


def save_network(
    net: EELSVAE, path: str | os.PathLike[str], recipe: str, training_data: str, metrics: dict
) -> Path:
    """Write ``net`` as safetensors with its model card (grid in ``inputs``)."""
    from convsuite.core_ops.io import save_checkpoint

    c = net.config
    card = net.model_card(
        recipe=recipe,
        training_data=training_data,
        intended_use=(
            "Flagging pixels of EELS spectrum images whose Fe L2,3 near-edge structure departs "
            "from the bulk (edge shifts >= 1.5 eV, white-line changes) after fine-tuning on the "
            "cube (eels-anomaly detect) or on a bulk region (eels-anomaly fit). Trained on "
            "simulated Fe/Mn oxide cubes only: not a phase classifier, not quantitative."
        ),
        inputs={
            "energy_ev": [c.energy_start_ev, c.energy_stop_ev],
            "n_energy": c.n_energy,
            "scaling": "1-99 percentile of the cube",
            "shard": SHARD,
        },
        outputs={"logits": "Bernoulli logits of the [0, 1] spectrum per pixel"},
        metrics=metrics,
    )
    return save_checkpoint(net.state_dict(), path, card)
