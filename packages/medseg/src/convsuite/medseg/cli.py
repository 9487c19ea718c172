"""``medseg``: command line of convsuite-medseg. ``medseg cxr ...`` is chest x-ray HybridGNet.

Bad input (a missing or colour image, wrong landmark counts, NaN) prints one line and exits with 2.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import typer
from rich.console import Console
from rich.progress import track

from convsuite.core_ops.io import atomic_write
from convsuite.core_ops.runtime import keep_freed_memory
from convsuite.medseg.data.images import read_radiograph, write_png
from convsuite.medseg.data.landmarks import stack
from convsuite.medseg.data.layout import write_sample
from convsuite.medseg.data.phantom import PhantomOptions, simulate_phantoms
from convsuite.medseg.evaluate import default_pixel_spacing, evaluate_dataset, results_table
from convsuite.medseg.figures import save_overlay
from convsuite.medseg.infer import CXRSegmentation, segment
from convsuite.medseg.models.hybridgnet import HybridGNet
from convsuite.medseg.models.pixel_baseline import UNetBaseline
from convsuite.medseg.train import train_hybridgnet, train_pixel_baseline

app = typer.Typer(help="convsuite-medseg: medical image segmentation.", no_args_is_help=True)
cxr = typer.Typer(
    help="Chest x-ray organ contours with HybridGNet (lungs, heart; clavicles optional).",
    no_args_is_help=True,
)
app.add_typer(cxr, name="cxr")
console = Console(stderr=True)


@cxr.command(epilog="Example: medseg cxr simulate --n 200 --seed 7 --out phantoms/ --occlusion 0.2")
def simulate(
    out: Path = typer.Option(..., help="Folder for images/ and landmarks/<organ>/."),
    n: int = typer.Option(200, help="Number of phantoms."),
    seed: int = typer.Option(7, help="Seed: same seed, same phantoms."),
    size: int = typer.Option(1024, help="Image side in pixels."),
    clavicles: bool = typer.Option(False, help="Also write RCLA/LCLA landmarks."),
    occlusion: float = typer.Option(0.0, help="Fraction of the lung field to cover with patches."),
    domain_shift: bool = typer.Option(False, help="Random strong intensity shifts."),
) -> None:
    """Simulate chest-radiograph phantoms with exact organ landmarks, in the dataset layout."""
    options = PhantomOptions(
        size=size, clavicles=clavicles, occlusion=occlusion, domain_shift=domain_shift
    )
    phantoms = simulate_phantoms(n, seed, options)
    for index, phantom in enumerate(track(phantoms, total=n, description="simulating")):
        write_sample(out, f"phantom_{seed}_{index:05d}", phantom.image, phantom.landmarks)
    meta = {
        "simulator": "convsuite.medseg.data.phantom",
        "seed": seed,
        "n": n,
        "options": options.__dict__,
        "pixel_spacing_mm": default_pixel_spacing(size),
    }
    with atomic_write(out / "meta.json") as handle:
        json.dump(meta, handle, indent=2)
    console.print(f"wrote {n} phantoms to {out}")


@cxr.command(
    epilog="Example: medseg cxr train phantoms/ --preset small --epochs 30 --out runs/hybridgnet"
)
def train(
    data_root: Path = typer.Argument(..., help="Landmark dataset (images/, landmarks/<organ>/)."),
    out: Path = typer.Option(Path("runs/medseg"), help="Logs, checkpoints, exported weights."),
    preset: str = typer.Option("small", help="Architecture preset: paper, small or tiny."),
    baseline: bool = typer.Option(False, help="Train the U-Net pixel baseline instead."),
    epochs: int = typer.Option(30, help="Epoch budget."),
    batch_size: int = typer.Option(8, help="Images per step."),
    lr: float = typer.Option(1e-3, help="Adam learning rate (HybridGNet)."),
    init: str | None = typer.Option(
        None,
        help="Start from weights of the same network: a bundled name (hybridgnet_small, "
        "unet_small) or a checkpoint.",
    ),
    seed: int = typer.Option(0, help="Seed of split, initialisation and sampling."),
    device: str = typer.Option("auto", help="Lightning accelerator: cpu, gpu or auto."),
    devices: str = typer.Option("auto", help="Devices (count or 'auto'); DDP when several."),
) -> None:
    """Train HybridGNet (or the U-Net baseline) and export safetensors + model card.

    On a real landmark dataset, fine-tune the bundled weights: --init hybridgnet_small --lr 1e-4.
    """
    keep_freed_memory()
    recipe = "medseg cxr train " + " ".join(
        [
            str(data_root),
            f"--preset {preset}",
            f"--epochs {epochs}",
            f"--batch-size {batch_size}",
            f"--lr {lr}",
            f"--seed {seed}",
        ]
        + (["--baseline"] if baseline else [])
        + ([f"--init {init}"] if init is not None else [])
    )
    settings = dict(
        out_dir=out,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        recipe=recipe,
        accelerator=device,
        devices=devices,
    )
    if baseline:
        result = train_pixel_baseline(data_root, preset=preset, init=init, **settings)
    else:
        result = train_hybridgnet(data_root, preset=preset, lr=lr, init=init, **settings)
    console.print(f"wrote {result.weights} in {result.seconds:.0f} s: {result.metrics}")


@cxr.command(
    "segment",
    epilog="Example: medseg cxr segment chest1.png chest2.png --out results/ --samples 20",
)
def segment_images(
    images: list[Path] = typer.Argument(..., help="Radiographs: PNG (grey) or JSRT .IMG."),
    out: Path = typer.Option(Path("medseg-output"), help="Output folder."),
    weights: str | None = typer.Option(
        None, help="Bundled name or checkpoint; default: hybridgnet_small."
    ),
    samples: int = typer.Option(0, help="Latent samples for per-landmark uncertainty."),
    batch_size: int = typer.Option(16, help="Images per forward pass."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Segment radiographs: landmarks (JSON, .npy), organ masks and an overlay PNG per image."""
    keep_freed_memory()
    net = HybridGNet.from_pretrained(weights, device=device)
    pictures = [read_radiograph(path) for path in images]
    generator = torch.Generator().manual_seed(0)
    results = segment(net, pictures, samples, batch_size, generator)
    for path, image, result in track(
        zip(images, pictures, results, strict=True), total=len(images), description="segmenting"
    ):
        _write_result(out, path.stem, image, result, net.config.organs)
    console.print(f"wrote results for {len(images)} image(s) to {out}")


def _write_result(
    out: Path, stem: str, image: np.ndarray, result: CXRSegmentation, organs: Sequence[str]
) -> None:
    record = {"image": stem, "image_shape": list(image.shape), **result.to_json()}
    with atomic_write(out / f"{stem}.json") as handle:
        json.dump(record, handle, indent=1)
    with atomic_write(out / f"{stem}_landmarks.npy", "wb") as handle:
        np.save(handle, stack(result.landmarks, organs))
    for organ, mask in result.masks.items():
        write_png(out / f"{stem}_mask_{organ}.png", mask)
    save_overlay(
        out / f"{stem}_overlay.png",
        image,
        result.landmarks,
        result.uncertainty,
        title=f"{stem}  CTR {result.cardiothoracic_ratio:.2f}",
    )


@cxr.command(epilog="Example: medseg cxr evaluate phantoms/test --baseline unet_small")
def evaluate(
    data_root: Path = typer.Argument(..., help="Landmark dataset with the true contours."),
    weights: str | None = typer.Option(
        None, help="HybridGNet: bundled name or checkpoint; default: hybridgnet_small."
    ),
    baseline: str | None = typer.Option(
        None, help="U-Net baseline: bundled name (unet_small) or checkpoint; omitted: none."
    ),
    pixel_spacing: float | None = typer.Option(
        None, help="mm per pixel; default: meta.json, else JSRT's 0.35 mm at 1024 px."
    ),
    out: Path | None = typer.Option(None, help="Write the summary JSON here."),
) -> None:
    """Dice, Hausdorff (mm), landmark MSE (px² at 1024 px) and topological validity per organ."""
    keep_freed_memory()
    net = HybridGNet.from_pretrained(weights)
    pixel = UNetBaseline.from_pretrained(baseline) if baseline is not None else None
    spacing = pixel_spacing or _meta_spacing(data_root)
    scores = evaluate_dataset(net, data_root, pixel, spacing)
    summary = {method: s.summary() for method, s in scores.items()}
    Console().print(results_table(summary, f"{data_root}", net.config.organs))
    if out is not None:
        with atomic_write(out) as handle:
            json.dump(summary, handle, indent=2)


def _meta_spacing(data_root: Path) -> float | None:
    meta = data_root / "meta.json"
    return json.loads(meta.read_text())["pixel_spacing_mm"] if meta.is_file() else None
