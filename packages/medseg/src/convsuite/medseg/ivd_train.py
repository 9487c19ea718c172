"""Training IVD-Net and its fusion baselines on sagittal slices; the recipe of the bundled weights.

The bundled ``ivdnet_small`` weights come from ``shared/recipes/medseg_ivdnet_small.sh``::

    medseg ivd simulate --n 24 --seed 11 --out spine/train
    medseg ivd train spine/train --model ivdnet --preset small --max-steps N --out runs/ivdnet
    medseg ivd train spine/train --init runs/ivdnet/ivdnet.safetensors --rotate-deg 20 ...

(stage 1 from random weights, then three fine-tuning stages on turned slices, the last on tilted
phantoms with more degenerated discs; see the recipe.)

Loss: cross-entropy over the two classes, as the reference code (``nn.CrossEntropyLoss``), or
MONAI's ``DiceCELoss`` (``loss="dicece"``). Optimizer: Adam with the reference's betas (0.9, 0.99).
The learning rate: the reference code uses 1e-4, the paper's text 1e-5 (200 epochs on a GPU); on
the CPU budget of the recipe 1e-4 beat 1e-5 clearly and 1e-3 beat both (see the package README's
learning-rate table), so the recipe passes ``--lr 1e-3`` and the default stays the reference's 1e-4.

Slices: every sagittal slice that holds disc voxels, and every ``negatives_every``-th of the others
(the lateral slices without discs teach the network to stay quiet there); training crops are the
full superior-inferior height (the whole lumbar spine, so the network can count discs from the
sacrum) and ``crop_mm`` antero-posterior around the spine, turned by a random in-plane angle
(``rotate_deg``: the spine's tilt in the sagittal plane is an in-plane rotation of these slices).

The loss is taken on a grid twice as fine as the network's (:data:`LABEL_ZOOM`): the logits are
upsampled bilinearly (as :meth:`~convsuite.medseg.models.volume_segmenter.VolumeSegmenter.segment`
upsamples them to the scan) and compared with labels at half the network's pixel size; for the
``small`` preset (2.5 mm) on IVDM3Seg's 1.25 mm that is the scan's own labels. Labels on the
network's grid were used before (nearest neighbour): they pick one fine pixel of each 2 x 2 block,
half a fine pixel off the images' grid, and cap the Dice of their prediction brought back to
1.25 mm at 0.864 on the held-out phantoms (``packages/medseg/README.md``, "What limits Dice").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss
from torch.utils.data import DataLoader, Dataset

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import create_model, model_config
from convsuite.core_ops.training import (
    export_best,
    fine_tuned_card_text,
    init_from,
    make_trainer,
    seed_everything,
)
from convsuite.medseg.data.ivdm3seg import find_subjects, read_subject, to_canonical
from convsuite.medseg.models.volume_segmenter import prepare_slices

__all__ = [
    "IVD_MODELS",
    "LABEL_ZOOM",
    "IVDModule",
    "SliceSet",
    "TrainResult",
    "label_grid",
    "load_slices",
    "train_ivd",
]

IVD_MODELS = ("ivdnet", "unet_early_fusion", "unet_late_fusion")
"""Networks ``train_ivd`` trains (hub names)."""
LABEL_ZOOM = 2
"""Training labels have this many pixels per network pixel along each in-plane axis."""


@dataclass(frozen=True)
class SliceSet:
    """Sagittal training slices.

    Attributes:
        images: (N, 4, H, W) float16, normalized Dixon slices.
        labels: (N, LABEL_ZOOM * H, LABEL_ZOOM * W) uint8, 0/1 on a grid twice as fine.
        subjects: (N,) index of the subject each slice comes from.
        spine: (N,) antero-posterior pixel of the subject's discs' centre (crop centre).
        names: subject folder names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    subjects: torch.Tensor
    spine: torch.Tensor
    names: list[str]

    def subset(self, subjects: list[int]) -> SliceSet:
        keep = torch.isin(self.subjects, torch.tensor(subjects))
        return SliceSet(
            self.images[keep], self.labels[keep], self.subjects[keep], self.spine[keep], self.names
        )


def load_slices(
    root: str | os.PathLike[str],
    pixel_mm: float = 1.25,
    negatives_every: int = 4,
    progress: bool = True,
) -> SliceSet:
    """Read every labelled subject under ``root`` into sagittal slices at ``pixel_mm``.

    Raises:
        InputError: no subject, a subject without labels, or any reading error.
    """
    folders = find_subjects(root)
    images, labels, subjects, spine = [], [], [], []
    iterator = folders
    if progress:
        from rich.progress import track

        iterator = track(folders, description="reading subjects")
    for index, folder in enumerate(iterator):
        subject = read_subject(folder)
        if subject.labels is None:
            raise InputError(folder, "has no labels (<NN>_Labels.nii); training needs them")
        slices, _ = prepare_slices(subject.image, subject.affine, pixel_mm)
        canonical, _ = to_canonical(subject.labels, subject.affine)
        size = tuple(LABEL_ZOOM * n for n in slices.shape[-2:])
        target = label_grid(canonical, size)
        has_disc = target.flatten(1).any(1)
        keep = has_disc | (torch.arange(len(target)) % negatives_every == 0)
        keep = keep.bool()
        where = torch.nonzero(target.any(0).any(1)).flatten().float()
        centre = int(where.mean()) // LABEL_ZOOM if len(where) else slices.shape[-2] // 2
        images.append(slices[keep].half())
        labels.append(target[keep])
        subjects.append(torch.full((int(keep.sum()),), index))
        spine.append(torch.full((int(keep.sum()),), centre))
    return SliceSet(
        torch.cat(images),
        torch.cat(labels),
        torch.cat(subjects),
        torch.cat(spine),
        [f.name for f in folders],
    )


def label_grid(labels: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """Sagittal label slices brought to ``size``: (X, H, W) uint8 0/1.

    The labels as they are when ``size`` is theirs; otherwise resampled on the same centred grid
    as the images (area share when shrinking, bilinear when enlarging), disc where >= 0.5.

    Args:
        labels: (X, Y, Z) 0/1, RAS axis order.
        size: (H, W) in-plane size wanted.
    """
    target = torch.from_numpy(np.ascontiguousarray(labels > 0))
    if size == tuple(target.shape[-2:]):
        return target.to(torch.uint8)
    plane = target.shape[-2:]
    shrink = size[0] <= plane[0] and size[1] <= plane[1]
    kwargs = {"mode": "area"} if shrink else {"mode": "bilinear", "align_corners": False}
    shares = F.interpolate(target.float()[:, None], size=size, **kwargs)[:, 0]
    return (shares >= 0.5).to(torch.uint8)


def _rotate(
    image: torch.Tensor, label: torch.Tensor, degrees: float, row: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(C, H, W) image and (h, w) label of the same field of view (any grid) turned by
    ``degrees`` about the image pixel row ``row``, mid column; the image bilinear with zeros
    outside, the label 0/1 (bilinear, >= 0.5)."""
    angle = degrees * np.pi / 180
    cos, sin = np.cos(angle), np.sin(angle)
    height, width = image.shape[-2:]
    # affine_grid's coordinates run -1..1 along each axis on any grid: (x, y) = (column, row)
    turn = np.array([[cos, -sin * height / width], [sin * width / height, cos]])
    centre = np.array([0.0, (row + 0.5) / (height / 2) - 1])
    theta = torch.tensor(np.c_[turn, centre - turn @ centre], dtype=torch.float32)[None]

    def turned(x: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(theta, [1, *x.shape], align_corners=False)
        return F.grid_sample(x[None], grid, mode="bilinear", align_corners=False)[0]

    label = turned(label[None].float())[0] >= 0.5
    return turned(image), label.to(torch.uint8)


class _Crops(Dataset):
    """Random in-plane rotations, antero-posterior crops around the spine and per-channel
    intensity jitter."""

    def __init__(
        self, data: SliceSet, crop: int | None, augment: bool, rotate_deg: float = 0.0
    ) -> None:
        self.data, self.crop, self.augment, self.rotate_deg = data, crop, augment, rotate_deg

    def __len__(self) -> int:
        return len(self.data.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.data.images[index].float()
        label = self.data.labels[index]
        if self.augment and self.rotate_deg > 0:
            degrees = float(torch.empty(()).uniform_(-self.rotate_deg, self.rotate_deg))
            image, label = _rotate(image, label, degrees, int(self.data.spine[index]))
        if self.crop is not None and self.crop < image.shape[1]:
            centre = int(self.data.spine[index])
            jitter = int(torch.randint(-self.crop // 4, self.crop // 4 + 1, ()))
            start = min(max(centre + jitter - self.crop // 2, 0), image.shape[1] - self.crop)
            image = image[:, start : start + self.crop]
            label = label[LABEL_ZOOM * start : LABEL_ZOOM * (start + self.crop)]
        if self.augment:
            image = image * torch.empty(image.shape[0], 1, 1).uniform_(0.85, 1.15)
        return image, label.long()


class IVDModule(L.LightningModule):
    """Lightning wrapper of IVD-Net or a fusion baseline: CE (or Dice + CE) loss, Adam.

    Labels (class indices) may be on a finer grid than the logits (:data:`LABEL_ZOOM`): the logits
    are then upsampled bilinearly to it before the loss. Logs ``val_dice``: the disc Dice over all
    validation slices on the labels' grid (argmax of the upsampled logits).

    Args:
        net: the network (hub model ``ivdnet``, ``unet_early_fusion`` or ``unet_late_fusion``).
        lr: Adam learning rate.
        loss: ``"ce"`` (the reference) or ``"dicece"`` (MONAI ``DiceCELoss``).
    """

    def __init__(self, net: torch.nn.Module, lr: float = 1e-4, loss: str = "ce") -> None:
        super().__init__()
        if loss not in ("ce", "dicece"):
            raise ValueError(f"loss must be 'ce' or 'dicece', got {loss!r}")
        self.net, self.lr, self.loss_name = net, lr, loss
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True) if loss == "dicece" else None
        self._overlap = torch.zeros(3)

    @staticmethod
    def upsampled(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, K, H, W) logits brought to the (h, w) grid of (B, h, w) labels (bilinear)."""
        if tuple(logits.shape[-2:]) == tuple(labels.shape[-2:]):
            return logits
        size = tuple(labels.shape[-2:])
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of (B, 2, H, W) logits against (B, h, w) class indices (h, w: H, W or finer)."""
        logits, labels = self.upsampled(logits, labels), labels.long()
        if self.dice_ce is not None:
            return self.dice_ce(logits, labels[:, None])
        return F.cross_entropy(logits, labels)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        images, labels = batch
        loss = self.loss(self.net(images), labels)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._overlap = torch.zeros(3)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        images, labels = batch
        predicted = self.upsampled(self.net(images), labels).argmax(1)
        truth = labels > 0
        self._overlap += torch.tensor(
            [(predicted.bool() & truth).sum(), predicted.sum(), truth.sum()], dtype=torch.float32
        )

    def on_validation_epoch_end(self) -> None:
        both, predicted, truth = self._overlap.tolist()
        self.log("val_dice", 2 * both / max(predicted + truth, 1.0), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, betas=(0.9, 0.99))


@dataclass(frozen=True)
class TrainResult:
    """Where the exported weights are and what they reached."""

    weights: Path
    metrics: dict[str, float]
    seconds: float


def _check_disjoint(data_root: str | os.PathLike[str], val_root: str | os.PathLike[str]) -> None:
    """InputError (one line) when a subject folder of ``val_root`` is one of ``data_root``'s
    (compared as resolved paths, so links and ``..`` do not hide a shared subject)."""
    train = {folder.resolve() for folder in find_subjects(data_root)}
    shared = sorted(f for f in find_subjects(val_root) if f.resolve() in train)
    if shared:
        raise InputError(
            val_root,
            f"shares {len(shared)} subject folder(s) with the training data {data_root} "
            f"({', '.join(f.name for f in shared[:3])}{', ...' if len(shared) > 3 else ''}): "
            "--val-data must hold subjects that are not trained on",
        )


def train_ivd(
    data_root: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    model: str = "ivdnet",
    preset: str = "small",
    epochs: int = 10,
    max_steps: int = -1,
    batch_size: int = 4,
    lr: float = 1e-4,
    loss: str = "ce",
    crop_mm: float | None = 160.0,
    rotate_deg: float = 0.0,
    init: str | os.PathLike[str] | None = None,
    max_minutes: float | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    val_root: str | os.PathLike[str] | None = None,
    val_every: int | None = None,
    recipe: str = "",
    progress: bool = True,
    **trainer_kwargs: Any,
) -> TrainResult:
    """Train a disc network on an IVDM3Seg-layout dataset; export ``out_dir/<model>.safetensors``.

    Args:
        data_root: subject folders with labels (``<NN>/<NN>_{fat,inn,opp,wat,Labels}.nii``).
        out_dir: Lightning logs, checkpoints and the exported weights with their model card.
        model: ``ivdnet``, ``unet_early_fusion`` or ``unet_late_fusion``.
        preset: ``paper``, ``small`` or ``tiny``.
        epochs: epoch budget.
        max_steps: optimizer-step budget (-1: none); equal budgets for a comparison.
        batch_size: slices per step (the reference: 4).
        lr: Adam learning rate (reference code 1e-4, paper 1e-5).
        loss: ``ce`` or ``dicece``.
        crop_mm: antero-posterior extent of the training crops, mm (None: whole slices); the
            crop is this many pixels of ``config.pixel_mm``, rounded to a multiple of 16.
        rotate_deg: training slices are turned by a uniform random angle in
            [-rotate_deg, rotate_deg] degrees (0: not turned).
        init: weights to start from (fine-tuning): a bundled name (``ivdnet_small``) or a
            ``.safetensors`` checkpoint with its card, of the same architecture and config as
            ``model`` / ``preset``; None starts from random weights. The card keeps the
            starting card's recipe and training data after this run's.
        max_minutes: wall-clock budget of the training, minutes (None: none); the best
            checkpoint so far is exported when it runs out.
        seed: seeds the subject split, initialisation and sampling.
        val_fraction: share of subjects held out to pick the best checkpoint (when no
            ``val_root``).
        val_root: subject folders that pick the best checkpoint instead; every subject of
            ``data_root`` is then trained on, and the split no longer depends on ``seed`` (a
            fine-tuning stage with another seed would otherwise validate on subjects an earlier
            stage trained on).
        val_every: validate every this many steps (default: once per epoch; with ``max_steps``
            the epochs are shortened to equal lengths that end exactly at the budget, so the
            last step is validated too).
        recipe: the command line recorded in the model card.
        progress: progress bars.
        **trainer_kwargs: passed to :func:`convsuite.core_ops.training.make_trainer`.

    Raises:
        InputError: unknown model or preset, unreadable or unlabelled data, ``init`` missing
            or of another architecture or config, a ``val_root`` subject folder that is also one
            of ``data_root``'s.
    """
    if model not in IVD_MODELS:
        raise InputError(model, f"is not a disc network; use one of {', '.join(IVD_MODELS)}")
    started = time.perf_counter()
    if val_root is not None:
        _check_disjoint(data_root, val_root)
    seed_everything(seed)
    config = model_config(model, preset)
    data = load_slices(data_root, config.pixel_mm, progress=progress)
    if val_root is None:
        order = torch.randperm(len(data.names), generator=torch.Generator().manual_seed(seed))
        n_val = max(1, round(len(data.names) * val_fraction))
        if len(data.names) < 2:
            raise InputError(data_root, "needs at least 2 subjects (one for validation)")
        val_subjects, train_subjects = order[:n_val].tolist(), order[n_val:].tolist()
        val_data, train_data = data.subset(val_subjects), data.subset(train_subjects)
    else:
        val_data = load_slices(val_root, config.pixel_mm, progress=progress)
        train_subjects, n_val = list(range(len(data.names))), len(val_data.names)
        train_data = data  # every subject: no copy
    net = create_model(model, preset)
    start_card = None if init is None else init_from(net, init)
    module = IVDModule(net, lr=lr, loss=loss)
    crop = None if crop_mm is None else max(16, round(crop_mm / config.pixel_mm / 16) * 16)
    train_set = _Crops(train_data, crop, augment=True, rotate_deg=rotate_deg)
    val_set = _Crops(val_data, None, augment=False)
    per_epoch = max(1, len(train_set) // batch_size)
    settings: dict[str, Any] = {}
    if max_steps > 0:  # epochs of equal length that end exactly at the budget, each validated
        epochs = -(-max_steps // per_epoch)  # the epoch budget becomes what the steps need
        per_epoch = -(-max_steps // epochs)
        settings = {"max_steps": epochs * per_epoch, "limit_train_batches": per_epoch}
    if max_minutes is not None:
        settings["max_time"] = {"seconds": round(60 * max_minutes)}
    if val_every is not None:
        settings["val_check_interval"] = min(val_every, per_epoch)
    trainer = make_trainer(
        out_dir,
        max_epochs=epochs,
        monitor="val_dice",
        mode="max",
        progress=progress,
        **settings,
        **trainer_kwargs,
    )
    trainer.fit(
        module,
        DataLoader(train_set, batch_size, shuffle=True, drop_last=True),
        DataLoader(val_set, 8),
    )
    names = [data.names[i] for i in train_subjects]
    recipe = recipe or f"train_ivd({str(data_root)!r}, model={model!r}, preset={preset!r})"
    training_data = (
        f"{len(train_set)} sagittal slices of {len(names)} subjects of {data_root} "
        f"(validation: {len(val_set)} slices of {n_val} subjects"
        f"{'' if val_root is None else f' of {val_root}'}); lr {lr}, loss {loss}, "
        f"batch {batch_size}, crop {crop} px, rotation +-{rotate_deg} deg, loss on a "
        f"{LABEL_ZOOM}x finer grid, steps {trainer.global_step}"
        f"{'' if init is None else f', fine-tuned from {Path(init).name}'}"
    )
    recipe, training_data = fine_tuned_card_text(start_card, init, recipe, training_data)
    card = net.model_card(
        recipe=recipe,
        training_data=training_data,
        intended_use=PHANTOM_USE,
        inputs={
            "modalities": list(config.modalities),
            "pixel_mm": config.pixel_mm,
            "plane": "sagittal slices in RAS order (antero-posterior, inferior-superior)",
            "normalization": "each modality divided by its 99th percentile, clipped to [0, 3]",
        },
        outputs={"classes": ["background", "disc"], "activation": "softmax"},
    )
    seconds = time.perf_counter() - started
    metrics = {"train_seconds": round(seconds, 1)}
    weights = export_best(trainer, module, Path(out_dir) / f"{model}.safetensors", card, metrics)
    best = getattr(trainer.checkpoint_callback, "best_model_score", None)
    if best is not None:
        metrics["val_dice"] = float(best)
    return TrainResult(weights, metrics, seconds)


PHANTOM_USE = (
    "Trained on simulated Dixon spine phantoms (convsuite.medseg.data.spine_phantom): good for "
    "demos, tests and as a starting point for fine-tuning; shows the pipeline (orientation, "
    "normalization, slices, discs) working end to end. Not for real MRI: train on IVDM3Seg or "
    "your own labelled Dixon scans with `medseg ivd train`."
)
