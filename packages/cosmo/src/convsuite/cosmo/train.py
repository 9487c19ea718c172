"""Training SkyReconNet with Lightning on simulated skies, and :func:`fit_skyrecon`, the recipe.

Every training example is drawn on the fly from its seed (:func:`convsuite.cosmo.data.simulate_sky`:
an LCDM sky, beam, white noise, a galactic cut with f_sky drawn in 0.6-0.9 and point sources;
with a :class:`~convsuite.cosmo.data.PriorFamily` each sky its own amplitude, tilt, beam and noise
drawn from it), so an epoch is ``n_maps`` fresh-looking skies and a run needs no data on disk. The
loss is the paper's ``alpha (1 - SSIM) + (1 - alpha) MSE``, both over the holes only (observed
pixels are passed through and carry no error); MSE in units of the network's scale squared (per
map with ``adaptive_scale``: every sky weighs the same), SSIM on the faces with ``data_range``
800 muK.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from convsuite.core_ops.training import export_best, make_trainer, seed_everything
from convsuite.cosmo.data import (
    DEFAULT_NOISE_UK_ARCMIN,
    PriorFamily,
    default_fwhm_arcmin,
    simulate_sky,
)
from convsuite.cosmo.infer import prefill
from convsuite.cosmo.metrics import hole_ssim
from convsuite.cosmo.model import SkyReconConfig, SkyReconNet

__all__ = [
    "SimulatedSkies",
    "SkyReconModule",
    "TrainingSkies",
    "carry_over",
    "fit_skyrecon",
    "inpainting_loss",
]


@dataclass(frozen=True)
class TrainingSkies:
    """What the simulator draws for training (see :func:`convsuite.cosmo.data.simulate_sky`).

    ``family``: each sky's prior drawn from it (its noise range replaces ``noise_uk_arcmin``);
    None: LCDM, the Nside's default beam and ``noise_uk_arcmin`` for every sky.
    """

    nside: int = 128
    f_sky: tuple[float, float] = (0.6, 0.9)
    noise_uk_arcmin: float = DEFAULT_NOISE_UK_ARCMIN
    family: PriorFamily | None = None

    def describe(self) -> str:
        """The skies in words (model card)."""
        if self.family is None:
            prior = (
                f"LCDM (Planck 2018), beam 2 pixels FWHM, {self.noise_uk_arcmin} muK arcmin "
                "white noise"
            )
        else:
            f = self.family
            prior = (
                f"LCDM (Planck 2018) x amplitude {f.amplitude[0]}-{f.amplitude[1]}, tilt n_s "
                f"{f.n_s[0]}-{f.n_s[1]}, beam {f.fwhm_arcmin[0]}-{f.fwhm_arcmin[1]} arcmin FWHM, "
                f"{f.noise_uk_arcmin[0]}-{f.noise_uk_arcmin[1]} muK arcmin white noise (drawn "
                "per sky)"
            )
        return (
            f"simulate_sky at Nside {self.nside}: {prior}, galactic cut f_sky "
            f"{self.f_sky[0]}-{self.f_sky[1]} plus point sources"
        )


class SimulatedSkies(Dataset):
    """``n_maps`` simulated skies, item ``i`` made from seed ``first_seed + i``.

    Items are (masked, observed, fill, truth), each (12 n^2,) NESTED: the masked map (float32
    muK, holes 0), the observed pixels (bool), the network's diffusive pre-fill
    (:func:`convsuite.cosmo.infer.prefill`, float32 muK; computed here, in the DataLoader's
    workers) and the true sky (float32 muK).
    """

    def __init__(self, n_maps: int, first_seed: int, skies: TrainingSkies | None = None) -> None:
        self.n_maps, self.first_seed = n_maps, first_seed
        self.skies = skies or TrainingSkies()

    def __len__(self) -> int:
        return self.n_maps

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        seed, family = self.first_seed + i, self.skies.family
        sky = simulate_sky(
            self.skies.nside,
            seed,
            f_sky=self.skies.f_sky,
            noise_uk_arcmin=self.skies.noise_uk_arcmin,
            prior=None if family is None else family.draw(seed),
        )
        return (
            torch.from_numpy(sky.masked),
            torch.from_numpy(sky.observed),
            torch.from_numpy(prefill(sky.masked, sky.observed).astype("float32")),
            torch.from_numpy(sky.truth),
        )


def inpainting_loss(
    prediction: torch.Tensor,
    truth: torch.Tensor,
    observed: torch.Tensor,
    alpha: float,
    scale_uk: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``alpha (1 - SSIM) + (1 - alpha) MSE`` over the holes; returns (loss, mse, ssim) means.

    ``scale_uk``: muK, a number or (B, 1) per map (:meth:`SkyReconNet.scale`)."""
    holes = ~observed.bool()
    error = ((prediction - truth) / scale_uk) ** 2
    mse = (error * holes).sum() / holes.sum().clamp_min(1)
    ssim = hole_ssim(prediction, truth, observed).mean()
    return alpha * (1 - ssim) + (1 - alpha) * mse, mse, ssim


class SkyReconModule(L.LightningModule):
    """Lightning wrapper: the composite loss, AdamW, cosine decay; holds the network as ``net``.

    Args:
        config: the architecture.
        alpha: SSIM weight of the loss (the paper's alpha).
        lr, weight_decay: AdamW settings.
    """

    def __init__(
        self,
        config: SkyReconConfig,
        alpha: float = 0.5,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
    ) -> None:
        super().__init__()
        self.net = SkyReconNet(config)
        self.alpha, self.lr, self.weight_decay = alpha, lr, weight_decay
        self.save_hyperparameters(
            {"config": config.to_dict(), "alpha": alpha, "lr": lr, "weight_decay": weight_decay}
        )

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        masked, observed, fill, truth = batch
        prediction = self.net(masked, observed, fill)
        loss, mse, ssim = inpainting_loss(
            prediction, truth, observed, self.alpha, self.net.scale(masked, observed)
        )
        size = len(masked)
        self.log(f"{stage}_loss", loss, batch_size=size, prog_bar=True)
        self.log(f"{stage}_mse", mse, batch_size=size)
        self.log(f"{stage}_ssim", ssim, batch_size=size, prog_bar=stage == "val")
        return loss

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        self._step(batch, "val")
        masked, observed, fill, truth = batch  # what the network adds: its pre-fill's error alone
        scale = self.net.scale(masked, observed)
        prefill_mse = inpainting_loss(fill, truth, observed, 0.0, scale)[1]
        self.log("val_mse_prefill", prefill_mse, batch_size=len(fill))

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(
            self.net.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        # OneCycleLR needs 3 steps for its two phases (fewer divide by zero); a longer schedule
        # than the run only leaves the rate higher at its end
        steps = max(3, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=self.lr, total_steps=steps, pct_start=min(0.5, max(0.05, 2 / steps))
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


def carry_over(
    net: SkyReconNet, state: dict[str, torch.Tensor], trained_nside: int | None, nside: int
) -> None:
    """Load weights trained at ``trained_nside`` into ``net`` that will train at ``nside``.

    Levels are shared by name. At another Nside (or an unknown one: None) only the trained top
    level's entry/exit convolutions were ever used, so none is carried: the new top level keeps
    its own, whose exit starts at zero, and the network starts at exactly its diffusive fill.
    """
    if trained_nside != nside:
        state = {k: v for k, v in state.items() if not k.startswith(("entry.", "exit."))}
    missing = net.load_state_dict(state, strict=False)
    if missing.unexpected_keys:
        raise ValueError(f"unexpected weights {missing.unexpected_keys[:3]}...")


def fit_skyrecon(
    config: SkyReconConfig,
    out_dir: str | Path,
    skies: TrainingSkies | None = None,
    n_train: int = 512,
    n_val: int = 16,
    epochs: int = 4,
    batch_size: int = 2,
    alpha: float = 0.5,
    lr: float = 2e-3,
    seed: int = 0,
    init: str | os.PathLike[str] | None = None,
    num_workers: int = 0,
    progress: bool = True,
    recipe: str = "",
    **trainer_kwargs: Any,
) -> Path:
    """Train on simulated skies and write ``out_dir/skyrecon.safetensors`` (+ card).

    Args:
        config: the architecture.
        out_dir: Lightning logs, checkpoints and the exported weights.
        skies: what to simulate (Nside, f_sky range, noise).
        n_train, n_val: skies per epoch (seeds 1_000_000 + seed * 10_000 + i) and validation
            skies (seeds 2_000_000 + i), never the evaluation seeds (from 0).
        epochs, batch_size, alpha, lr: training settings.
        seed: initialisation and the training seeds.
        init: start from these weights (a bundled name or a ``.safetensors`` from this function;
            levels shared by name, e.g. a Nside 128 network's into a Nside 256 one).
        num_workers: DataLoader workers (simulation runs there).
        progress: progress bar.
        recipe: the command recorded in the card.
        **trainer_kwargs: to :func:`convsuite.core_ops.training.make_trainer` (``accelerator``,
            ``devices``, ``strategy``, ``max_time``...).

    Returns:
        The weights path.
    """
    skies = skies or TrainingSkies()
    config.levels(skies.nside)  # fails early when the config cannot serve this Nside
    started = time.perf_counter()
    seed_everything(seed)
    module = SkyReconModule(config, alpha=alpha, lr=lr)
    if init is not None:
        start = SkyReconNet.from_pretrained(init)
        trained_nside = start.card.inputs.get("nside") if start.card else None
        try:
            carry_over(module.net, start.state_dict(), trained_nside, skies.nside)
        except ValueError as error:
            raise ValueError(f"{init}: {error}") from None
    train = SimulatedSkies(n_train, 1_000_000 + seed * 10_000, skies)
    val = SimulatedSkies(n_val, 2_000_000, skies)
    loader = {"batch_size": batch_size, "num_workers": num_workers}
    trainer = make_trainer(out_dir, max_epochs=epochs, progress=progress, **trainer_kwargs)
    trainer.fit(module, DataLoader(train, shuffle=True, **loader), DataLoader(val, **loader))
    metrics = {"train_seconds": round(time.perf_counter() - started, 1)}
    for key in ("val_mse", "val_mse_prefill"):  # the network's hole MSE and its pre-fill's
        if key in trainer.callback_metrics:
            metrics[key] = float(trainer.callback_metrics[key])
    card = module.net.model_card(
        recipe=recipe
        or f"fit_skyrecon(nside={skies.nside}, n_train={n_train}, epochs={epochs}, "
        f"batch_size={batch_size}, alpha={alpha}, lr={lr}, seed={seed}, init={init})",
        training_data=f"{skies.describe()}; {n_train} skies per epoch",
        intended_use=(
            f"Inpainting masked CMB temperature maps at Nside {skies.nside} (galactic cut and "
            "point sources) whose statistics resemble the training skies. Trained on simulations "
            "only: check on your own simulations before relying on it for real data."
        ),
        inputs={
            "nside": skies.nside,
            "ordering": "NESTED",
            "unit": "uK_CMB",
            "beam_fwhm_arcmin": round(default_fwhm_arcmin(skies.nside), 2)
            if skies.family is None
            else list(skies.family.fwhm_arcmin),
            "noise_uk_arcmin": skies.noise_uk_arcmin
            if skies.family is None
            else list(skies.family.noise_uk_arcmin),
            "mask": f"galactic cut (f_sky {skies.f_sky[0]}-{skies.f_sky[1]}) plus point sources",
        },
        outputs={
            "ordering": "NESTED",
            "unit": "uK_CMB",
            "values": "CMB temperature in the masked pixels; observed pixels passed through",
        },
    )
    return export_best(
        trainer, module, Path(out_dir) / "skyrecon.safetensors", card, metrics=metrics
    )
