"""``medseg``: command line of convsuite-medseg. ``medseg cxr ...`` is chest x-ray HybridGNet,
``medseg ivd ...`` intervertebral discs in Dixon MRI with IVD-Net (:mod:`convsuite.medseg.ivd_cli`).

Every command runs through :func:`convsuite.core_ops.cli.run`: bad input (a missing, colour or
oversized image, wrong landmark counts, a broken model card, an output that would replace an
input) prints one ``error:`` line and exits with status 2. torch and the pipeline are imported
inside the commands, so ``medseg --help`` answers at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from convsuite.core_ops.cli import (
    Accelerator,
    BatchSize,
    Device,
    Devices,
    NumNodes,
    Precision,
    Seed,
    Strategy,
    guard_outputs,
    output_stems,
    recipe_command,
    run,
    torch_device,
    trainer_settings,
)
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_write
from convsuite.medseg.ivd_cli import ivd

if TYPE_CHECKING:
    import numpy as np

    from convsuite.medseg.infer import CXRSegmentation

__all__ = ["app", "main"]

app = typer.Typer(
    help="convsuite-medseg: medical image segmentation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cxr = typer.Typer(
    help="Chest x-ray organ contours with HybridGNet (lungs, heart; clavicles optional).",
    no_args_is_help=True,
)
app.add_typer(cxr, name="cxr")
app.add_typer(ivd, name="ivd")

Weights = Annotated[
    str | None,
    typer.Option(
        help="HybridGNet weights: a bundled name (hybridgnet_small) or a .safetensors checkpoint "
        "with its JSON card; default: hybridgnet_small.",
        metavar="NAME|PATH",
    ),
]


def main() -> None:
    """The ``medseg`` console script."""
    run(app)


@cxr.command(epilog="Example: medseg cxr simulate --n 200 --seed 7 --out phantoms/ --occlusion 0.2")
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for images/ and landmarks/<organ>/.")],
    n: Annotated[int, typer.Option(min=1, help="Number of phantoms.")] = 200,
    seed: Seed = 7,
    size: Annotated[int, typer.Option(min=64, help="Image side in pixels.")] = 1024,
    clavicles: Annotated[bool, typer.Option(help="Also write RCLA/LCLA landmarks.")] = False,
    occlusion: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Fraction of the lung field to cover.")
    ] = 0.0,
    domain_shift: Annotated[bool, typer.Option(help="Random strong intensity shifts.")] = False,
) -> None:
    """Simulate chest-radiograph phantoms with exact organ landmarks, in the dataset layout."""
    from dataclasses import asdict

    from rich.console import Console
    from rich.progress import track

    from convsuite.medseg.data.images import default_pixel_spacing
    from convsuite.medseg.data.layout import write_sample
    from convsuite.medseg.data.phantom import PhantomOptions, simulate_phantoms

    _check_folder(out)
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
        "options": asdict(options),
        "pixel_spacing_mm": default_pixel_spacing(size),
    }
    with atomic_write(out / "meta.json") as handle:
        json.dump(meta, handle, indent=2)
    Console(stderr=True, soft_wrap=True).print(f"wrote {n} phantoms to {out}")


@cxr.command(
    epilog="Example: medseg cxr train phantoms/ --preset small --epochs 30 --out runs/hybridgnet"
    "  |  on 4 GPUs: --accelerator gpu --devices 4 --strategy ddp"
)
def train(
    data_root: Annotated[
        Path, typer.Argument(help="Landmark dataset (images/, landmarks/<organ>/).")
    ],
    out: Annotated[Path, typer.Option(help="Logs, checkpoints, exported weights.")] = Path(
        "runs/medseg"
    ),
    preset: Annotated[str, typer.Option(help="Architecture preset: paper, small or tiny.")] = (
        "small"
    ),
    baseline: Annotated[bool, typer.Option(help="Train the U-Net pixel baseline instead.")] = False,
    epochs: Annotated[int, typer.Option(min=1, help="Epoch budget.")] = 30,
    batch_size: BatchSize = 8,
    lr: Annotated[float, typer.Option(min=0.0, help="Adam learning rate (HybridGNet).")] = 1e-3,
    init: Annotated[
        str | None,
        typer.Option(
            help="Start from weights of the same network: a bundled name (hybridgnet_small, "
            "unet_small) or a checkpoint; their architecture replaces --preset's.",
            metavar="NAME|PATH",
        ),
    ] = None,
    seed: Seed = 0,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Train HybridGNet (or the U-Net baseline) and export safetensors + model card.

    On a real landmark dataset, fine-tune the bundled weights: --init hybridgnet_small --lr 1e-4.
    """
    settings = trainer_settings(accelerator, devices, strategy, num_nodes)
    _check_folder(out)
    from rich.console import Console

    from convsuite.medseg.train import train_hybridgnet, train_pixel_baseline

    common = dict(
        out_dir=out,
        preset=preset,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        init=init,
        recipe=recipe_command(),
        **settings,
    )
    if baseline:
        result = train_pixel_baseline(data_root, **common)
    else:
        result = train_hybridgnet(data_root, lr=lr, **common)
    Console(stderr=True, soft_wrap=True).print(
        f"wrote {result.weights} in {result.seconds:.0f} s: {result.metrics}"
    )


@cxr.command(
    "segment",
    epilog="Example: medseg cxr segment chest1.png chest2.png --out results/ --samples 20"
    "  |  faster on CPUs with bf16 units: --precision bf16",
)
def segment_images(
    images: Annotated[
        list[Path], typer.Argument(help="Radiographs: PNG (grey) or JSRT .IMG.", show_default=False)
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("medseg-output"),
    weights: Weights = None,
    samples: Annotated[
        int, typer.Option(min=0, help="Latent samples for per-landmark uncertainty.")
    ] = 0,
    batch_size: BatchSize = 16,
    device: Device = "cpu",
    precision: Precision = "fp32",
) -> None:
    """Segment radiographs: landmarks (JSON, .npy), organ masks and an overlay PNG per image.

    Outputs of IMAGE are <stem>.json, <stem>_landmarks.npy, <stem>_mask_<organ>.png and
    <stem>_overlay.png; images with the same file name in different folders get their folders in
    <stem> (a/chest.png, b/chest.png -> a_chest, b_chest). Every input is checked before any work:
    the file, its image header, its size (at most 25 M pixels, e.g. 5000 x 5000, read from the
    header) and its output names (an output may not replace an input). Each image's outputs appear
    together or not at all: should an image still fail while being read, the command stops with
    exit status 2; the images of earlier batches keep their complete outputs, the failing image, the
    rest of its batch and the images after it have none.
    """
    stems = output_stems(images)
    _check_folder(out)
    from convsuite.medseg.data.images import check_radiograph, read_radiograph

    for path in images:
        check_radiograph(path)

    import torch
    from rich.console import Console
    from rich.progress import Progress

    from convsuite.core_ops.precision import inference_mode, prepare_for_inference
    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.medseg.infer import segment
    from convsuite.medseg.models.hybridgnet import HybridGNet

    keep_freed_memory()
    net = HybridGNet.from_pretrained(weights, device=torch_device(device))
    net = prepare_for_inference(net, precision)  # bf16: encoder convs/linears; graph decoder fp32
    organs = net.config.organs
    guard_outputs([out / name for stem in stems for name in _output_names(stem, organs)], images)
    out.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    with (
        inference_mode(precision),
        Progress(console=Console(stderr=True), transient=True) as progress,
    ):
        task = progress.add_task("segmenting", total=len(images))
        for start in range(0, len(images), batch_size):
            chunk = slice(start, start + batch_size)
            pictures = [read_radiograph(path) for path in images[chunk]]
            results = segment(net, pictures, samples, batch_size, generator)
            for stem, image, result in zip(stems[chunk], pictures, results, strict=True):
                _write_result(out, stem, image, result, organs)
                progress.advance(task)
    Console(stderr=True, soft_wrap=True).print(f"wrote results for {len(images)} image(s) to {out}")


def _output_names(stem: str, organs: tuple[str, ...]) -> list[str]:
    """File names ``segment`` writes for one image, in the order they are written."""
    return [
        f"{stem}.json",
        f"{stem}_landmarks.npy",
        *(f"{stem}_mask_{organ}.png" for organ in organs),
        f"{stem}_overlay.png",
    ]


def _write_result(
    out: Path, stem: str, image: np.ndarray, result: CXRSegmentation, organs: tuple[str, ...]
) -> None:
    """Write one image's outputs as a set: staged in a hidden folder in ``out``, then moved in."""
    import os
    import shutil
    import tempfile

    import numpy as np

    from convsuite.core_ops.figures import save_figure
    from convsuite.medseg.data.images import write_png
    from convsuite.medseg.data.landmarks import stack
    from convsuite.medseg.figures import overlay_figure

    names = _output_names(stem, organs)
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".part", dir=out))
    moved: list[Path] = []
    try:
        record = {"image": stem, "image_shape": list(image.shape), **result.to_json()}
        with open(staging / names[0], "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)
        np.save(staging / names[1], stack(result.landmarks, organs))
        for organ, name in zip(organs, names[2:-1], strict=True):
            write_png(staging / name, result.masks[organ])
        title = f"{stem}  CTR {result.cardiothoracic_ratio:.2f}"
        overlay = overlay_figure(image, result.landmarks, result.uncertainty, title=title)
        save_figure(overlay, staging / names[-1])
        for name in names:
            os.replace(staging / name, out / name)
            moved.append(out / name)
    except BaseException:
        for path in moved:  # never leave part of a set behind
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@cxr.command(epilog="Example: medseg cxr evaluate phantoms/test --baseline unet_small")
def evaluate(
    data_root: Annotated[Path, typer.Argument(help="Landmark dataset with the true contours.")],
    weights: Weights = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            help="Also score the U-Net baseline: a bundled name (unet_small) or a checkpoint.",
            metavar="NAME|PATH",
        ),
    ] = None,
    pixel_spacing: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="mm per pixel; default: meta.json, else JSRT's 0.35 mm at 1024 px."
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write the summary JSON here.")] = None,
    batch_size: BatchSize = 16,
    device: Device = "cpu",
) -> None:
    """Dice, Hausdorff (mm), landmark MSE (px² at 1024 px) and topological validity per organ."""
    if out is not None and out.is_dir():
        raise InputError(out, "is a folder; --out names the summary JSON file")
    from rich.console import Console

    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.medseg.data.layout import scan_dataset
    from convsuite.medseg.evaluate import evaluate_dataset, results_table
    from convsuite.medseg.models.hybridgnet import HybridGNet
    from convsuite.medseg.models.pixel_baseline import UNetBaseline

    keep_freed_memory()
    device = torch_device(device)
    net = HybridGNet.from_pretrained(weights, device=device)
    pixel = UNetBaseline.from_pretrained(baseline, device=device) if baseline else None
    if out is not None:
        samples = scan_dataset(data_root, net.config.organs)
        inputs = [data_root / "meta.json", *(s.image_path for s in samples)]
        inputs += [p for s in samples for p in s.landmark_paths.values()]
        guard_outputs([out], inputs)
    spacing = pixel_spacing or _meta_spacing(data_root)
    scores = evaluate_dataset(net, data_root, pixel, spacing, batch_size=batch_size)
    summary = {method: s.summary() for method, s in scores.items()}
    Console().print(results_table(summary, f"{data_root}", net.config.organs))
    if out is not None:
        with atomic_write(out) as handle:
            json.dump(summary, handle, indent=2)


def _check_folder(out: Path) -> None:
    """Refuse an output folder that is a file (before any work is done)."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file; an output folder is needed here")


def _meta_spacing(data_root: Path) -> float | None:
    """``pixel_spacing_mm`` of the dataset's ``meta.json`` (written by ``simulate``), if any."""
    meta = data_root / "meta.json"
    if not meta.is_file():
        return None
    try:
        spacing = json.loads(meta.read_text(encoding="utf-8")).get("pixel_spacing_mm")
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError) as error:
        raise InputError(meta, f"is not a JSON object ({error})") from None
    if spacing is not None and (not isinstance(spacing, (int, float)) or spacing <= 0):
        raise InputError(meta, f"pixel_spacing_mm must be a positive number, got {spacing!r}")
    return spacing
