"""``medseg ivd ...``: intervertebral discs in Dixon MRI with IVD-Net (simulate, train, segment,
evaluate). Mounted by :mod:`convsuite.medseg.cli`; torch is imported inside the commands.
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
    torch_device,
    trainer_settings,
)
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_write

if TYPE_CHECKING:
    from convsuite.medseg.ivd_infer import IVDResult

__all__ = ["ivd"]

ivd = typer.Typer(
    help="Intervertebral discs in Dixon MRI (fat, in-phase, opposed-phase, water) with IVD-Net.",
    no_args_is_help=True,
)

MODELS = ("ivdnet", "unet_early_fusion", "unet_late_fusion")
_OUTPUTS = ("labels.nii.gz", "discs.json", "overlay.png")

Weights = Annotated[
    str | None,
    typer.Option(
        help="Disc network weights: a bundled name (ivdnet_small) or a .safetensors checkpoint "
        "with its JSON card (IVD-Net or a fusion baseline); default: ivdnet_small.",
        metavar="NAME|PATH",
    ),
]

Shifts = Annotated[
    bool,
    typer.Option(
        help="Also run the network on grids moved by half its pixel and average (4x the work "
        "for the small preset on 1.25 mm scans; finer outlines)."
    ),
]


def _check_folder(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file; an output folder is needed here")


def _load_network(weights: str | None, device: str = "cpu"):
    """IVD-Net or a fusion baseline, by the architecture its card names."""
    from convsuite.core_ops.hub import resolve_weights
    from convsuite.core_ops.io import read_card
    from convsuite.medseg.models.fusion_baselines import EarlyFusionUNet, LateFusionUNet
    from convsuite.medseg.models.ivdnet import IVDNet

    classes = {cls.__name__: cls for cls in (IVDNet, EarlyFusionUNet, LateFusionUNet)}
    path = resolve_weights(IVDNet, weights)
    architecture = read_card(path.with_suffix(".json")).architecture
    if architecture not in classes:
        raise InputError(path, f"holds a {architecture}, not a disc network ({', '.join(classes)})")
    return classes[architecture].from_pretrained(path, device=torch_device(device))


@ivd.command(epilog="Example: medseg ivd simulate --n 40 --seed 11 --out spine/train")
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for the subject folders <NN>/.")],
    n: Annotated[int, typer.Option(min=1, help="Number of subjects.")] = 20,
    seed: Seed = 11,
    tilt_deg: Annotated[
        float, typer.Option(min=0.0, help="Std of the spine's sagittal tilt, degrees.")
    ] = 6.0,
    degenerated: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Probability of a degenerated disc.")
    ] = 0.15,
    noise: Annotated[float, typer.Option(min=0.0, help="Rician noise level.")] = 0.04,
    reorient: Annotated[
        bool, typer.Option(help="Store each volume in a random axis order and flips.")
    ] = True,
    gzip: Annotated[bool, typer.Option(help="Write .nii.gz (else .nii).")] = True,
) -> None:
    """Simulate Dixon spine phantoms with disc labels, in the IVDM3Seg layout."""
    from rich.console import Console
    from rich.progress import track

    from convsuite.medseg.data.ivdm3seg import write_subject
    from convsuite.medseg.data.spine_phantom import SpineOptions, simulate_spines

    _check_folder(out)
    options = SpineOptions(tilt_deg, degenerated, noise, reorient=reorient)
    width = max(2, len(str(n - 1)))
    records = []
    phantoms = simulate_spines(n, seed, options)
    for index, phantom in enumerate(track(phantoms, total=n, description="simulating")):
        name = f"{index:0{width}d}"
        write_subject(out, name, phantom.image, phantom.affine, phantom.labels, compress=gzip)
        records.append({"name": name, "degenerated": list(phantom.degenerated)})
        records[-1]["tilt_deg"] = round(phantom.tilt_deg, 2)
    meta = {"simulator": "convsuite.medseg.data.spine_phantom", "seed": seed, "n": n}
    meta |= {"options": options.__dict__, "subjects": records}
    with atomic_write(out / "meta.json") as handle:
        json.dump(meta, handle, indent=1)
    Console(stderr=True, soft_wrap=True).print(f"wrote {n} subjects to {out}")


@ivd.command(
    epilog="Example: medseg ivd train spine/train --preset small --max-steps 400 --lr 1e-3 "
    "--out runs/ivdnet  |  baseline: --model unet_early_fusion"
)
def train(
    data_root: Annotated[Path, typer.Argument(help="Subject folders with <NN>_Labels.nii.")],
    out: Annotated[Path, typer.Option(help="Logs, checkpoints, exported weights.")] = Path(
        "runs/ivdnet"
    ),
    model: Annotated[
        str, typer.Option(help="ivdnet, unet_early_fusion or unet_late_fusion.")
    ] = "ivdnet",
    preset: Annotated[str, typer.Option(help="paper, small or tiny.")] = "small",
    epochs: Annotated[int, typer.Option(min=1, help="Epoch budget.")] = 10,
    max_steps: Annotated[
        int, typer.Option(help="Optimizer-step budget (-1: none); equal budgets to compare.")
    ] = -1,
    batch_size: BatchSize = 4,
    lr: Annotated[
        float, typer.Option(min=0.0, help="Adam learning rate (reference 1e-4, paper 1e-5).")
    ] = 1e-4,
    loss: Annotated[str, typer.Option(help="ce (the reference) or dicece (MONAI).")] = "ce",
    crop_mm: Annotated[
        float, typer.Option(min=0, help="Antero-posterior crop of training slices, mm (0: none).")
    ] = 160.0,
    rotate_deg: Annotated[
        float,
        typer.Option(min=0, help="Turn training slices by a random angle up to this, degrees."),
    ] = 0.0,
    init: Annotated[
        str | None,
        typer.Option(
            help="Start from these weights (fine-tuning): a bundled name (ivdnet_small) or a "
            ".safetensors checkpoint of the same --model and --preset.",
            metavar="NAME|PATH",
        ),
    ] = None,
    max_minutes: Annotated[
        float | None,
        typer.Option(min=0.1, help="Wall-clock budget, minutes; the best checkpoint is kept."),
    ] = None,
    val_data: Annotated[
        Path | None,
        typer.Option(
            help="Subject folders that pick the best checkpoint (default: 10% of DATA_ROOT's "
            "subjects, drawn by --seed); every DATA_ROOT subject is then trained on. Refused "
            "when it shares a subject folder with DATA_ROOT."
        ),
    ] = None,
    seed: Seed = 0,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Train IVD-Net (or a fusion baseline) on sagittal slices; export safetensors + model card."""
    settings = trainer_settings(accelerator, devices, strategy, num_nodes)
    _check_folder(out)
    if model not in MODELS:
        raise InputError(model, f"is not a disc network; use one of {', '.join(MODELS)}")
    if loss not in ("ce", "dicece"):
        raise InputError(loss, "is not a loss; use ce or dicece")
    from rich.console import Console

    from convsuite.medseg.ivd_train import train_ivd

    result = train_ivd(
        data_root,
        out,
        model=model,
        preset=preset,
        epochs=epochs,
        max_steps=max_steps,
        batch_size=batch_size,
        lr=lr,
        loss=loss,
        crop_mm=crop_mm or None,
        rotate_deg=rotate_deg,
        init=init,
        max_minutes=max_minutes,
        seed=seed,
        val_root=val_data,
        recipe=recipe_command(),
        **settings,
    )
    Console(stderr=True, soft_wrap=True).print(
        f"wrote {result.weights} in {result.seconds:.0f} s: {result.metrics}"
    )


@ivd.command(
    "segment",
    epilog="Example: medseg ivd segment data/01 data/02 --out discs/ --precision bf16"
    "  (writes discs/01/, discs/02/)",
)
def segment_subjects(
    subjects: Annotated[
        list[Path],
        typer.Argument(
            help="Subject folders (<NN>/<NN>_{fat,inn,opp,wat}.nii).", show_default=False
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("ivd-output"),
    weights: Weights = None,
    batch_size: BatchSize = 6,
    device: Device = "cpu",
    precision: Precision = "fp32",
    shifts: Shifts = True,
) -> None:
    """Segment and localize the discs: OUT/<subject>/labels.nii.gz, discs.json, overlay.png.

    labels.nii.gz has the input's shape and affine (0/1); discs.json lists the discs head to feet
    with their centroids in world mm (the affine's frame) and volumes in mm^3; overlay.png is the
    mid-sagittal water image with the discs outlined and numbered. Every folder is checked for
    its four volumes before any work; a subject whose volumes turn out unreadable, of different
    shapes or affines, or with NaN stops the command (exit 2) and gets no output, while the
    subjects before it keep theirs.
    """
    from convsuite.medseg.data.ivdm3seg import subject_files

    for folder in subjects:
        subject_files(folder)
    stems = output_stems(subjects)
    _check_folder(out)
    inputs = [p for folder in subjects for p in subject_files(folder)[0].values()]
    guard_outputs([out / stem / name for stem in stems for name in _OUTPUTS], inputs)

    from rich.console import Console
    from rich.progress import Progress

    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.medseg.ivd_infer import segment_subject

    keep_freed_memory()
    net = _load_network(weights, device)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True, soft_wrap=True)
    with Progress(console=console, transient=True) as progress:
        for stem, folder in zip(stems, subjects, strict=True):
            task = progress.add_task(f"{stem}: slices", total=None)

            def advance(done: int, task=task) -> None:
                progress.update(task, completed=done)

            result = segment_subject(net, folder, batch_size, advance, precision, shifts)
            _write_result(out / stem, result)
            progress.remove_task(task)
            Console().print(f"{stem}: {len(result.discs)} discs")
    console.print(f"wrote results for {len(subjects)} subject(s) to {out}")


def _write_result(folder: Path, result: IVDResult) -> None:
    """labels.nii.gz, discs.json and overlay.png of one subject, staged then moved in together."""
    import os
    import shutil
    import tempfile

    import nibabel as nib
    import numpy as np

    from convsuite.core_ops.figures import save_figure
    from convsuite.medseg.ivd_figures import disc_overlay_figure

    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ivd.", suffix=".part", dir=folder))
    moved: list[Path] = []
    try:
        volume = nib.Nifti1Image(result.labels.astype(np.uint8), result.affine)
        volume.header.set_xyzt_units("mm")
        nib.save(volume, staging / _OUTPUTS[0])
        with open(staging / _OUTPUTS[1], "w", encoding="utf-8") as handle:
            json.dump(result.discs_json(), handle, indent=1)
        figure = disc_overlay_figure(
            result.image, result.affine, result.labels, result.discs, title=result.name
        )
        save_figure(figure, staging / _OUTPUTS[2])
        for name in _OUTPUTS:
            os.replace(staging / name, folder / name)
            moved.append(folder / name)
    except BaseException:
        for path in moved:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@ivd.command(
    epilog="Example: medseg ivd evaluate spine/test --baseline runs/unet/unet_early_fusion"
    ".safetensors --out scores.json"
)
def evaluate(
    data_root: Annotated[Path, typer.Argument(help="Labelled subject folders.")],
    weights: Weights = None,
    baseline: Annotated[
        list[str] | None,
        typer.Option(
            help="Also score these disc networks (checkpoints of the fusion baselines); "
            "repeatable.",
            metavar="PATH",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write the summary and per-subject scores (JSON).")
    ] = None,
    figure: Annotated[Path | None, typer.Option(help="Write a bar chart of the methods.")] = None,
    batch_size: BatchSize = 6,
    device: Device = "cpu",
    shifts: Shifts = True,
) -> None:
    """Dice, HD95 and mean surface distance (mm, MONAI, with the spacing), centroid error (mm)
    and discs found, per subject and per disc, for IVD-Net and the baselines."""
    for path in (out, figure):
        if path is not None and path.is_dir():
            raise InputError(path, "is a folder; a file name is needed")
    from rich.console import Console
    from rich.table import Table

    from convsuite.core_ops.figures import save_figure
    from convsuite.medseg.data.ivdm3seg import find_subjects, subject_files
    from convsuite.medseg.ivd_evaluate import evaluate_subjects, summarize
    from convsuite.medseg.ivd_figures import method_bars_figure

    folders = find_subjects(data_root)
    inputs = [p for f in folders for p in subject_files(f)[0].values()]
    guard_outputs([p for p in (out, figure) if p is not None], inputs)
    networks = {}
    for spec in [weights, *(baseline or [])]:
        net = _load_network(spec, device)
        name = type(net).__name__
        networks[name if name not in networks else f"{name} ({spec})"] = net
    console = Console(stderr=True, soft_wrap=True)
    scores = evaluate_subjects(
        networks, data_root, batch_size, lambda m, s: console.print(f"{m}: {s}"), shifts
    )
    summary = {method: summarize(s) for method, s in scores.items()}
    table = Table(title=f"{data_root}: {len(folders)} subjects")
    columns = ("dice", "hd95_mm", "msd_mm", "centroid_error_mm", "discs_found", "all_found")
    table.add_column("method")
    for column in (*columns, "extra_per_subject", "seconds_per_subject"):
        table.add_column(column.replace("_", " "))
    for method, row in summary.items():
        values = [row[c] for c in (*columns, "extra_per_subject", "seconds_per_subject")]
        table.add_row(method, *(f"{v:.3f}" for v in values))
    Console().print(table)
    if out is not None:
        record = {
            "summary": summary,
            "subjects": {m: [s.to_json() for s in ss] for m, ss in scores.items()},
        }
        with atomic_write(out) as handle:
            json.dump(record, handle, indent=1)
    if figure is not None:
        save_figure(method_bars_figure(summary), figure)
