"""Training: the loss, simulated calls as a dataset, the LightningModule, and the bundled recipe.

Loss (per stage, on pseudo-complex spectra): the compressed complex spectral loss of Braun &
Tashev, "A consolidated view of loss functions for supervised deep learning-based speech
enhancement", TSP 2021: with ``|.|^0.3`` compression, ``0.3 * mean |S_c - T_c|^2 + 0.7 * mean
(|S_c| - |T_c|)^2``; the compression makes quiet residual echo count. The total is
``L(S, near) + 0.5 L(M_e Y, near + noise) + 0.01 R(S, near, Y)``: the second term supervises the
echo mask alone (the dual-mask cascade, see :mod:`convsuite.audio.model`); the third,
:func:`residual_db`, is the error energy of each call relative to its microphone energy in dB
(ours, not the paper's). In far-end single talk (target silence) it is minus the ERLE, so every dB
of echo suppression counts the same whether the residual is loud or already quiet; in double talk
it is minus an SNR improvement, so removing near-end speech costs as much as leaving echo.

Optional speech-distortion term (``distortion_weight`` D, default 0; the fine-tuning stage 4 of
the recipe): the masks are linear in their input, so the estimate splits into the near-end speech
passed through them, ``M_n M_e T``, and the rest. :func:`speech_distortion` is the spectral loss
of ``M_n M_e T`` against T: it charges the masks for what they do to near-end speech alone (zero
in far-end single talk), apart from how much echo they leave, after the weighted
speech-distortion loss of Xia et al., "Weighted speech distortion losses for neural-network-based
real-time speech enhancement", ICASSP 2020 (there: ``alpha SD + (1 - alpha) NR``; here added to
the terms above with weight D).

Training data (ours): the scenario mix of the training calls is a parameter (the recipe draws
far-end single talk, whose ERLE the issue targets, more often than :func:`simulate_call`'s 20 %).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from convsuite.audio.data.simulate import SCENARIOS, simulate_call
from convsuite.audio.infer import align_far, estimate_delay
from convsuite.audio.model import D3AEC, D3AECConfig, compress
from convsuite.audio.stft import stft
from convsuite.core_ops.training import (
    export_best,
    fine_tuned_card_text,
    init_from,
    make_trainer,
    seed_everything,
)

__all__ = [
    "AECModule",
    "SimulatedCalls",
    "residual_db",
    "spectral_loss",
    "speech_distortion",
    "train_network",
]

_VALIDATION_SEED = 10_000_000  # validation calls: train-split seeds far from the training ones
RESIDUAL_WEIGHT = 0.01
"""Weight of :func:`residual_db` in the loss (per dB; the spectral terms are ~0.05-0.2)."""
RESIDUAL_FLOOR_DB = -60.0
"""Default ``floor_db`` of :func:`residual_db`: minus the ERLE (dB) past which it stops pulling."""


def spectral_loss(
    estimate: Tensor, target: Tensor, power: float = 0.3, alpha: float = 0.3
) -> Tensor:
    """Compressed complex + magnitude spectral loss of pseudo-complex (N, 2, T, F) spectra."""
    est, ref = compress(estimate, power), compress(target, power)
    complex_term = (est - ref).pow(2).mean()

    def magnitude(x: Tensor) -> Tensor:
        real, imag = x.chunk(2, dim=1)
        return (real * real + imag * imag + 1e-8).sqrt()

    magnitude_term = (magnitude(est) - magnitude(ref)).pow(2).mean()
    return alpha * complex_term + (1 - alpha) * magnitude_term


def residual_db(
    estimate: Tensor, target: Tensor, mic: Tensor, floor_db: float = RESIDUAL_FLOOR_DB
) -> Tensor:
    """Mean over calls of ``10 log10(sum |S - T|^2 / sum |Y|^2 + 10^(floor_db / 10))``, dB.

    S the estimate, T the target, Y the microphone, all pseudo-complex (N, 2, T, F). In far-end
    single talk (T = 0) this is minus the ERLE of the call; ``floor_db`` (relative to the
    microphone energy) bounds it below: past an ERLE of ``-floor_db`` the term stops pulling (its
    gradient halves at that ERLE and fades 10 dB further).
    """
    dims = tuple(range(1, estimate.dim()))
    error = (estimate - target).pow(2).sum(dims)
    energy = mic.pow(2).sum(dims) + 1e-10
    return (10 * torch.log10(error / energy + 10 ** (floor_db / 10))).mean()


def speech_distortion(echo_mask: Tensor, noise_mask: Tensor, target: Tensor) -> Tensor:
    """:func:`spectral_loss` of the near-end speech passed through both masks, ``M_n M_e T``, vs T.

    All pseudo-complex (N, 2, T, F); zero when T = 0 (far-end single talk) or both masks are 1.
    """
    passed, _ = D3AEC.apply_masks(echo_mask, noise_mask, target)
    return spectral_loss(passed, target)


class SimulatedCalls(Dataset):
    """Simulated calls (:func:`simulate_call`) with the far end aligned as the pipeline does.

    Item i: float32 tensors (samples,) ``mic``, ``far`` (GCC-PHAT aligned), ``near``,
    ``echo_free`` (near + noise), from call seed ``seed + i``.

    Args:
        count, seed, seconds, split: calls, first seed, length (s), ``"train"`` or ``"test"``.
        mix: probabilities of far-end single talk, near-end single talk and double talk (drawn
            per item from the call seed); None keeps :func:`simulate_call`'s own draw (20/20/60 %).
    """

    def __init__(
        self,
        count: int,
        seed: int,
        seconds: float = 3.0,
        split: str = "train",
        mix: tuple[float, float, float] | None = None,
    ) -> None:
        self.count, self.seed, self.seconds, self.split = count, seed, seconds, split
        if mix is not None and (min(mix) < 0 or abs(sum(mix) - 1) > 1e-6):
            raise ValueError(f"mix must be three probabilities summing to 1, got {mix}")
        self.mix = mix

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        seed = self.seed + index
        scenario = None
        if self.mix is not None:
            scenario = np.random.default_rng([seed, 16]).choice(SCENARIOS, p=self.mix)
        call = simulate_call(seed, self.seconds, scenario=scenario, split=self.split)
        far = align_far(call.far, estimate_delay(call.mic, call.far))
        arrays = {
            "mic": call.mic,
            "far": far,
            "near": call.near,
            "echo_free": call.near + call.noise,
        }
        return {
            k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in arrays.items()
        }


def _pseudo(signal: Tensor) -> Tensor:
    """(N, samples) -> (N, 2, T, F) pseudo-complex STFT."""
    spec = stft(signal)
    return torch.stack([spec.real, spec.imag], dim=1)


class AECModule(L.LightningModule):
    """Trains a :class:`D3AEC` on batches of :class:`SimulatedCalls` with :func:`spectral_loss`."""

    def __init__(
        self,
        config: D3AECConfig,
        lr: float = 1e-3,
        residual_weight: float = RESIDUAL_WEIGHT,
        distortion_weight: float = 0.0,
        residual_floor_db: float = RESIDUAL_FLOOR_DB,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "config": config.to_dict(),
                "lr": lr,
                "residual_weight": residual_weight,
                "distortion_weight": distortion_weight,
                "residual_floor_db": residual_floor_db,
            }
        )
        self.net = D3AEC(config)
        self.lr, self.residual_weight = lr, residual_weight
        self.distortion_weight, self.residual_floor_db = distortion_weight, residual_floor_db

    def _loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        mic = _pseudo(batch["mic"])
        echo_mask, noise_mask = self.net.mask_pair(mic, _pseudo(batch["far"]))
        near, echo_free = self.net.apply_masks(echo_mask, noise_mask, mic)
        target = _pseudo(batch["near"])
        loss = spectral_loss(near, target)
        loss = loss + 0.5 * spectral_loss(echo_free, _pseudo(batch["echo_free"]))
        if self.residual_weight:
            loss = loss + self.residual_weight * residual_db(
                near, target, mic, self.residual_floor_db
            )
        if self.distortion_weight:
            loss = loss + self.distortion_weight * speech_distortion(echo_mask, noise_mask, target)
        return loss, near, mic

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        loss, _, _ = self._loss(batch)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        loss, _, _ = self._loss(batch)
        self.log("val_loss", loss, prog_bar=True, batch_size=batch["mic"].shape[0])

    def configure_optimizers(self) -> Any:
        return torch.optim.Adam(self.net.parameters(), lr=self.lr)


def train_network(
    out_dir: str | Path,
    weights: str | Path,
    card_recipe: str,
    preset_config: D3AECConfig,
    train_calls: int = 512,
    val_calls: int = 16,
    seconds: float = 3.0,
    epochs: int = 4,
    batch_size: int = 4,
    lr: float = 2e-3,
    seed: int = 0,
    max_minutes: float | None = None,
    steps_per_epoch: int | None = None,
    mix: tuple[float, float, float] | None = None,
    init: str | Path | None = None,
    residual_weight: float = RESIDUAL_WEIGHT,
    distortion_weight: float = 0.0,
    residual_floor_db: float = RESIDUAL_FLOOR_DB,
    progress: bool | None = True,
    **trainer_settings: Any,
) -> Path:
    """Train on simulated calls, keep the best validation loss, write weights + card.

    Args:
        out_dir: Lightning's folder (checkpoints, CSV metrics).
        weights: the ``.safetensors`` file to write (card beside it).
        card_recipe: the command line recorded in the card.
        preset_config: the architecture.
        train_calls, val_calls: calls per epoch / in validation; seconds: call length.
        epochs, batch_size, lr, seed: the usual.
        max_minutes: wall-clock limit for ``fit`` (None: none).
        steps_per_epoch: batches per epoch drawn (shuffled) from the ``train_calls`` (None: all),
            so that a long pool of calls gives frequent validation and fresh calls every epoch.
        mix: scenario probabilities (fst, nst, dt) of the training calls (see
            :class:`SimulatedCalls`); validation keeps the default draw.
        init: a ``.safetensors`` checkpoint of the same architecture to start from (fine-tuning);
            None starts from random weights. InputError when its architecture differs. The card
            keeps the starting card's recipe and training data after this run's.
        residual_weight: weight of :func:`residual_db` in the loss (0: spectral terms only).
        distortion_weight: weight of :func:`speech_distortion` in the loss (0: none).
        residual_floor_db: ``floor_db`` of :func:`residual_db`.
        progress: progress bar (see :func:`~convsuite.core_ops.training.make_trainer`).
        **trainer_settings: accelerator, devices, strategy, num_nodes.

    Returns:
        The weights path; its card's metrics hold ``train_minutes``, ``steps`` (optimizer steps
        taken: fewer than ``epochs * steps_per_epoch`` when ``max_minutes`` ran out) and the best
        ``val_loss``.
    """
    seed_everything(seed)
    module = AECModule(
        preset_config,
        lr=lr,
        residual_weight=residual_weight,
        distortion_weight=distortion_weight,
        residual_floor_db=residual_floor_db,
    )
    start_card = None if init is None else init_from(module.net, init)
    train = DataLoader(
        SimulatedCalls(train_calls, seed, seconds, mix=mix), batch_size=batch_size, shuffle=True
    )
    val = DataLoader(
        SimulatedCalls(val_calls, _VALIDATION_SEED + seed, seconds), batch_size=batch_size
    )
    limit = None if max_minutes is None else {"minutes": max_minutes}
    trainer = make_trainer(
        out_dir,
        max_epochs=epochs,
        progress=progress,
        max_time=limit,
        limit_train_batches=steps_per_epoch,
        **trainer_settings,
    )
    start = time.perf_counter()
    trainer.fit(module, train, val)
    minutes = (time.perf_counter() - start) / 60
    recipe, training_data = (
        card_recipe,
        (
            f"{train_calls} simulated {seconds:g}-s calls per epoch (convsuite.audio.data."
            f"simulate_call, split='train', seeds {seed}..{seed + train_calls - 1}, scenario "
            f"mix fst/nst/dt {mix or 'simulate_call default 0.2/0.2/0.6'}"
            f"{'' if init is None else f', fine-tuned from {Path(init).name}'}, residual-energy "
            f"weight {residual_weight:g} (floor {residual_floor_db:g} dB), "
            f"speech-distortion weight {distortion_weight:g}): "
            "synthetic source-filter speech, pyroomacoustics and exponential echo paths, "
            "loudspeaker nonlinearity, 10-500 ms delay, stationary and non-stationary noise"
        ),
    )
    recipe, training_data = fine_tuned_card_text(start_card, init, recipe, training_data)
    card = module.net.model_card(
        recipe=recipe,
        training_data=training_data,
        intended_use=(
            "Demonstrating and testing the pipeline on simulated calls; not trained on real "
            "speech or real rooms, so not for real calls."
        ),
        inputs={"sample_rate": 16000, "n_fft": 512, "hop": 256, "channels": "mic, far (aligned)"},
        outputs={"near_end": "complex STFT of the near-end speech estimate"},
    )
    metrics = {"train_minutes": minutes}
    return export_best(trainer, module, weights, card, metrics=metrics)
