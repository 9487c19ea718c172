"""core-ops' demo (entry point ``core-ops`` of ``convsuite.demos``): DCLS ConvNeXt and re-parameterization.

Two things in well under half a minute on two CPU cores:

1. A small ConvNeXt whose depthwise mixers are DCLS convolutions learns a seeded synthetic
   3-class task (noisy 32x32 images of randomly placed and oriented bars, crosses and rings),
   trained with the shared Lightning plumbing (:mod:`convsuite.core_ops.training`) and capped by
   steps and wall time; the best weights are exported as safetensors with a model card.
2. A :class:`~convsuite.core_ops.layers.reparam.DilatedReparamConv2d` block with warmed-up
   BatchNorm statistics is folded into one large depthwise conv: same output (max abs difference
   reported) and faster.
"""

from __future__ import annotations

import copy
import csv
import math
import statistics
import time
import warnings
from datetime import timedelta
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from convsuite.core_ops.demo import DemoResult
from convsuite.core_ops.figures import new_figure, save_figure
from convsuite.core_ops.io import ModelCard
from convsuite.core_ops.layers.dcls import DCLSConv2d
from convsuite.core_ops.layers.reparam import (
    DilatedReparamConv2d,
    assert_reparam_equivalent,
    reparameterize_model,
)
from convsuite.core_ops.training import export_best, make_trainer, seed_everything

__all__ = ["CLASSES", "make_shapes", "run"]

CLASSES = ("bar", "cross", "ring")
_SEED = 0
_SIZE = 32
_NOISE = 0.35
_N_TRAIN, _N_VAL, _N_TEST = 2048, 256, 512
_BATCH = 64
_MAX_STEPS = 320
_VAL_EVERY = 40
_MAX_TRAIN_SECONDS = 14
_LR = 5e-3


def make_shapes(
    n: int, seed: int, size: int = _SIZE, noise: float = _NOISE
) -> tuple[Tensor, Tensor]:
    """Noisy images of one bar, cross or ring each, at random position, orientation and size.

    Same ``seed``, same images. Shapes have soft edges (a logistic of the distance to the
    outline, 0.5 px scale) and amplitude in [0.6, 1.2]; white Gaussian noise of std ``noise`` is
    added. Bars and crosses have half-lengths of 0.2-0.35 ``size``, rings radii of 0.15-0.3
    ``size``; all strokes are 1.6-3.6 px wide.

    Args:
        n: number of images.
        seed: seed of the generator.
        size: image side in pixels.
        noise: standard deviation of the additive noise (shape amplitude ~1).

    Returns:
        images ``(n, 1, size, size)`` float32 and labels ``(n,)`` int64 indexing :data:`CLASSES`.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(low: float, high: float) -> Tensor:
        return low + (high - low) * torch.rand(n, 1, 1, generator=generator)

    labels = torch.randint(0, len(CLASSES), (n,), generator=generator)
    cx, cy = uniform(0.3 * size, 0.7 * size), uniform(0.3 * size, 0.7 * size)
    theta = uniform(0.0, math.pi)
    half_length, half_width = uniform(0.2 * size, 0.35 * size), uniform(0.8, 1.8)
    radius, amplitude = uniform(0.15 * size, 0.3 * size), uniform(0.6, 1.2)
    grid = torch.arange(size, dtype=torch.float32)
    ys, xs = torch.meshgrid(grid, grid, indexing="ij")
    dx, dy = xs - cx, ys - cy
    along = dx * torch.cos(theta) + dy * torch.sin(theta)
    across = -dx * torch.sin(theta) + dy * torch.cos(theta)

    def inside(distance_to_edge: Tensor) -> Tensor:
        return torch.sigmoid(distance_to_edge / 0.5)

    bar = inside(half_width - across.abs()) * inside(half_length - along.abs())
    cross = torch.maximum(
        bar, inside(half_width - along.abs()) * inside(half_length - across.abs())
    )
    ring = inside(half_width - (torch.hypot(along, across) - radius).abs())
    masks = torch.stack([bar, cross, ring], dim=1)[torch.arange(n), labels]
    images = amplitude * masks + noise * torch.randn(n, size, size, generator=generator)
    return images.unsqueeze(1), labels


class _ConvNeXtBlock(nn.Module):
    """ConvNeXt block (Liu et al., CVPR 2022, Fig. 4) with a DCLS depthwise mixer (DCLS, ICLR 2023).

    ``x + gamma * pw2(GELU(pw1(LN(dcls_dw(x)))))``; (N, C, H, W) -> (N, C, H, W).
    """

    def __init__(self, channels: int, kernel_count: int, dilated_kernel_size: int) -> None:
        super().__init__()
        self.mixer = DCLSConv2d(
            channels,
            channels,
            kernel_count,
            padding=dilated_kernel_size // 2,
            dilated_kernel_size=dilated_kernel_size,
            groups=channels,
        )
        self.norm = nn.LayerNorm(channels)
        self.pw1 = nn.Linear(channels, 4 * channels)
        self.pw2 = nn.Linear(4 * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        y = self.mixer(x).permute(0, 2, 3, 1)
        y = self.pw2(F.gelu(self.pw1(self.norm(y)))) * self.gamma
        return x + y.permute(0, 3, 1, 2)


class _ChannelsLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of (N, C, H, W)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class _TinyDCLSConvNeXt(nn.Module):
    """A three-stage ConvNeXt (Liu et al., CVPR 2022) with DCLS depthwise mixers, for the demo.

    2x2 stride-2 patchify stem with LN, then stages of widths ``dims`` separated by LN + 2x2 stride-2
    downsampling, global average pooling, LN and a linear head; (N, C_in, H, W) -> (N, classes).
    """

    def __init__(
        self,
        in_chans: int = 1,
        num_classes: int = len(CLASSES),
        dims: tuple[int, ...] = (16, 32, 64),
        kernel_count: int = 9,
        dilated_kernel_size: int = 9,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_chans, dims[0], 2, stride=2),
            _ChannelsLayerNorm(dims[0]),
        ]
        for index, width in enumerate(dims):
            if index:
                layers += [
                    _ChannelsLayerNorm(dims[index - 1]),
                    nn.Conv2d(dims[index - 1], width, 2, 2),
                ]
            layers.append(_ConvNeXtBlock(width, kernel_count, dilated_kernel_size))
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dims[-1])
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.norm(self.features(x).mean(dim=(-2, -1))))


class _ShapeClassifier(L.LightningModule):
    def __init__(self, net: nn.Module, max_steps: int) -> None:
        super().__init__()
        self.net = net
        self.max_steps = max_steps

    def training_step(self, batch: tuple[Tensor, Tensor], _: int) -> Tensor:
        images, labels = batch
        loss = F.cross_entropy(self.net(images), labels)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], _: int) -> None:
        images, labels = batch
        logits = self.net(images)
        self.log("val_loss", F.cross_entropy(logits, labels))
        self.log("val_acc", (logits.argmax(1) == labels).float().mean())

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.AdamW(self.parameters(), lr=_LR, weight_decay=0.05)
        schedule = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=_LR, total_steps=self.max_steps, pct_start=0.1
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


@torch.no_grad()
def _accuracy(net: nn.Module, images: Tensor, labels: Tensor) -> float:
    net.eval()
    device = next(net.parameters()).device
    predictions = torch.cat([net(chunk.to(device)).argmax(1).cpu() for chunk in images.split(256)])
    return float((predictions == labels).float().mean())


def _read_log(metrics_csv: Path) -> dict[str, list[tuple[int, float]]]:
    curves: dict[str, list[tuple[int, float]]] = {"train_loss": [], "val_loss": [], "val_acc": []}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, curve in curves.items():
                if row.get(key):
                    curve.append((int(row["step"]), float(row[key])))
    return curves


def _loss_figure(curves: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    figure = new_figure(figsize=(5, 3.2))
    axis = figure.subplots()
    steps, losses = zip(*curves["train_loss"], strict=True)
    axis.plot(steps, losses, lw=1, label="training batch")
    if curves["val_loss"]:
        axis.plot(*zip(*curves["val_loss"], strict=True), "o-", label="validation")
    axis.axhline(math.log(len(CLASSES)), color="grey", ls=":", label="chance (ln 3)")
    axis.set(xlabel="optimizer step", ylabel="cross-entropy", title="DCLS ConvNeXt: loss")
    axis.legend()
    return save_figure(figure, path, dpi=100)


def _accuracy_figure(train: float, held_out: float, path: Path) -> Path:
    figure = new_figure(figsize=(4, 3.2))
    axis = figure.subplots()
    bars = axis.bar(["train", "held-out"], [train, held_out], color=["tab:blue", "tab:green"])
    axis.bar_label(bars, fmt="%.2f")
    axis.axhline(1 / len(CLASSES), color="grey", ls=":", label="chance (1/3)")
    axis.set(ylim=(0, 1.05), ylabel="accuracy", title="bars / crosses / rings")
    axis.legend(loc="lower right")
    return save_figure(figure, path, dpi=100)


def _examples_figure(net: nn.Module, images: Tensor, labels: Tensor, path: Path) -> Path:
    with torch.no_grad():
        predicted = net.eval()(images.to(next(net.parameters()).device)).argmax(1).cpu()
    figure = new_figure(figsize=(7.5, 3))
    axes = figure.subplots(2, 6)
    for axis, image, label, guess in zip(axes.flat, images, labels, predicted, strict=False):
        axis.imshow(image[0].numpy(), cmap="gray")
        color = "black" if label == guess else "red"
        axis.set_title(f"{CLASSES[label]} -> {CLASSES[guess]}", fontsize=8, color=color)
        axis.axis("off")
    figure.suptitle("held-out examples: true -> predicted", fontsize=10)
    return save_figure(figure, path, dpi=100)


def _median_ms(module: nn.Module, x: Tensor, repeats: int = 15) -> float:
    times = []
    with torch.inference_mode():
        module(x)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _reparam_check(channels: int = 32, kernel_size: int = 13) -> dict[str, float]:
    """Warm up a Dilated Reparam Block's BN statistics, fold it, compare outputs and speed."""
    generator = torch.Generator().manual_seed(_SEED)
    block = DilatedReparamConv2d(channels, kernel_size)
    with torch.no_grad():
        for bn in (m for m in block.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.weight.uniform_(0.5, 1.5, generator=generator)
            bn.bias.uniform_(-0.2, 0.2, generator=generator)
        block.train()
        for _ in range(8):  # running statistics away from their (0, 1) initial values
            block(0.5 + 2.0 * torch.randn(8, channels, 24, 24, generator=generator))
    x = torch.randn(8, channels, 32, 32, generator=generator)
    max_diff = assert_reparam_equivalent(block, x, atol=1e-5)
    fused = reparameterize_model(copy.deepcopy(block))
    block.eval()
    unfused_ms, fused_ms = _median_ms(block, x), _median_ms(fused, x)
    return {
        "channels": channels,
        "kernel_size": kernel_size,
        "branches": len(block.branches) + 1,
        "max_abs_diff": max_diff,
        "unfused_ms": unfused_ms,
        "fused_ms": fused_ms,
        "speedup": unfused_ms / fused_ms,
    }


def _reparam_figure(check: dict[str, float], path: Path) -> Path:
    figure = new_figure(figsize=(4, 3.2))
    axis = figure.subplots()
    labels = [f"{check['branches']} branches + BN", "folded: one conv"]
    bars = axis.bar(
        labels, [check["unfused_ms"], check["fused_ms"]], color=["tab:orange", "tab:blue"]
    )
    axis.bar_label(bars, fmt="%.2f ms")
    axis.set(
        ylim=(0, 1.2 * check["unfused_ms"]),
        ylabel="forward time (ms, median)",
        title=f"speed-up {check['speedup']:.1f}x, max |diff| {check['max_abs_diff']:.1e}",
    )
    return save_figure(figure, path, dpi=100)


def run(out_dir: Path, max_train_seconds: float | None = _MAX_TRAIN_SECONDS) -> DemoResult:
    """Train the DCLS ConvNeXt on synthetic shapes, check re-parameterization; write figures.

    Args:
        out_dir: folder for the figures, the exported checkpoint and Lightning's logs.
        max_train_seconds: wall-time cap of the training (s), so that the demo stays short on a
            slow or busy machine; None trains the full step budget (same result on every machine).
    """
    out_dir = Path(out_dir)
    seed_everything(_SEED)
    images, labels = make_shapes(_N_TRAIN + _N_VAL, seed=_SEED)
    test_images, test_labels = make_shapes(_N_TEST, seed=_SEED + 1)
    train_set = TensorDataset(images[:_N_TRAIN], labels[:_N_TRAIN])
    val_set = TensorDataset(images[_N_TRAIN:], labels[_N_TRAIN:])

    config = {"dims": [16, 32, 64], "kernel_count": 9, "dilated_kernel_size": 9}
    net = _TinyDCLSConvNeXt(in_chans=1, num_classes=len(CLASSES), **config)
    module = _ShapeClassifier(net, _MAX_STEPS)
    trainer = make_trainer(
        out_dir / "lightning",
        max_epochs=math.ceil(_MAX_STEPS * _BATCH / _N_TRAIN),
        max_steps=_MAX_STEPS,
        max_time=None if max_train_seconds is None else timedelta(seconds=max_train_seconds),
        val_check_interval=_VAL_EVERY,
        check_val_every_n_epoch=None,
        devices=1,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        trainer.fit(
            module,
            DataLoader(train_set, batch_size=_BATCH, shuffle=True),
            DataLoader(val_set, batch_size=256),
        )
    train_seconds = time.perf_counter() - start
    card = ModelCard(
        architecture=type(net).__name__,
        config=config,
        recipe="convsuite-demo --only core-ops",
        training_data=f"make_shapes({_N_TRAIN}, seed={_SEED}): {'/'.join(CLASSES)}, {_SIZE}x{_SIZE}",
        intended_use="Demonstration of DCLS ConvNeXt training; not a model of any real data.",
    )
    checkpoint = export_best(trainer, module, out_dir / "shape_classifier.safetensors", card)
    train_acc = _accuracy(net, *train_set.tensors)
    held_out_acc = _accuracy(net, test_images, test_labels)
    curves = _read_log(Path(trainer.logger.log_dir) / "metrics.csv")
    check = _reparam_check()
    figures = [
        _loss_figure(curves, out_dir / "loss.png"),
        _accuracy_figure(train_acc, held_out_acc, out_dir / "accuracy.png"),
        _examples_figure(net, test_images[:12], test_labels[:12], out_dir / "examples.png"),
        _reparam_figure(check, out_dir / "reparam.png"),
    ]
    summary = {
        "task": f"{len(CLASSES)}-class synthetic shapes ({', '.join(CLASSES)}), noise {_NOISE}",
        "model": f"{type(net).__name__}, DCLS depthwise mixers",
        "parameters": sum(p.numel() for p in net.parameters()),
        "train_steps": trainer.global_step,
        "train_seconds": round(train_seconds, 2),
        "best_val_loss": float(trainer.checkpoint_callback.best_model_score),
        "train_accuracy": train_acc,
        "held_out_accuracy": held_out_acc,
        "chance": 1 / len(CLASSES),
        "checkpoint": checkpoint.name,
        "reparam": check,
    }
    budget = "" if max_train_seconds is None else f" / {max_train_seconds:g} s"
    return DemoResult(
        title="DCLS ConvNeXt learns bars/crosses/rings; reparam block folds exactly",
        summary=summary,
        figures=figures,
        description=(
            f"A small ConvNeXt with DCLS depthwise mixers is trained for at most {_MAX_STEPS} "
            f"steps{budget} on {_N_TRAIN} seeded synthetic {_SIZE}x{_SIZE} images "
            f"and scored on {_N_TEST} held-out ones (chance 1/3). A Dilated Reparam Block "
            "(UniRepLKNet) with warmed-up BatchNorm statistics is folded into one depthwise conv: "
            "the maximum output difference and the forward speed-up are shown."
        ),
    )
