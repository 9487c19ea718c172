"""``eels-anomaly``: detect, fit, train, simulate, evaluate.

The console script runs the typer app through :func:`convsuite.core_ops.cli.run`: bad input (an
unreadable or truncated file, no energy axis, a window outside it, an all-NaN cube, an output that
would replace the input) prints one line and exits with status 2, and no output file is written
(outputs are written to temporary names and renamed; the figures and summary only after every
array is computed). This module imports neither numpy nor torch nor hyperspy: each command imports
its pipeline when it runs, so ``--help`` is fast.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

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
    recipe_command,
    run,
    torch_device,
    trainer_settings,
)
from convsuite.core_ops.errors import InputError

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Anomaly detection in EELS spectrum images with a 3D convolutional VAE.",
)

Window = Annotated[
    tuple[float, float],
    typer.Option(help="Scoring window on the calibrated energy axis, eV.", metavar="LOW HIGH"),
]
Weights = Annotated[
    str | None,
    typer.Option(help="Bundled checkpoint name or a .safetensors file (default: bundled)."),
]
Threshold = Annotated[
    str,
    typer.Option(
        "--threshold",
        help="null: robust null model of the cube's scores (knows when there is no anomaly); "
        "otsu: the reference's (assumes two classes).",
    ),
]
FalseAlarm = Annotated[
    float,
    typer.Option(help="The null model's false-alarm rate per normal pixel.", min=0, max=1),
]


def _quiet() -> None:
    """hyperspy logs import notes and reader errors; the CLI reports errors in one line."""
    logging.getLogger("hyperspy").setLevel(logging.CRITICAL)
    logging.getLogger("rsciio").setLevel(logging.CRITICAL)
    for name in ("lightning", "lightning.pytorch", "lightning.pytorch.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _bar():
    from rich.progress import Progress

    return Progress(disable=not sys.stderr.isatty(), transient=True)


@app.command(
    epilog="Example: eels-anomaly detect cube.hspy --window 690 730 --out results/ "
    "--threshold null --false-alarm 5e-4 --precision bf16"
)
def detect(
    cube: Annotated[Path, typer.Argument(help="Spectrum image (.hspy, .zspy, .emd, .dm3/.dm4).")],
    out: Annotated[Path, typer.Option(help="Output folder.")],
    window: Window = (690.0, 730.0),
    fit: Annotated[
        bool, typer.Option(help="Fine-tune on the cube's own pixels first (--no-fit: as is).")
    ] = True,
    fit_seconds: Annotated[float, typer.Option(min=0, help="Fine-tuning budget, s.")] = 45.0,
    weights: Weights = None,
    reference: Annotated[
        str,
        typer.Option(
            help="either: suspect under local or network (finds clusters); local: the "
            "reconstruction corrected by the neighbours' median residual (sharpest for single "
            "pixels, misses clusters); network: the reconstruction (the reference's)."
        ),
    ] = "either",
    threshold_method: Threshold = "null",
    false_alarm: FalseAlarm = 5e-4,
    precision: Precision = "fp32",
    seed: Seed = 0,
    device: Device = "cpu",
) -> None:
    """Score every pixel; write scores.hspy, mask.hspy, anomalies.png, spectra.png, summary.json."""
    _quiet()
    from convsuite.materials.scoring import check_reference, check_threshold, score_label

    check_threshold(threshold_method, false_alarm)
    check_reference(reference)
    outputs = [out / n for n in ("scores.hspy", "mask.hspy", "anomalies.png", "spectra.png")]
    guard_outputs([*outputs, out / "summary.json", out], [cube])
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file; --out takes a folder")
    device = torch_device(device)
    import hyperspy.api as hs

    from convsuite.core_ops.figures import save_figure
    from convsuite.core_ops.io import atomic_write
    from convsuite.materials.data import read_spectrum_image, write_signal
    from convsuite.materials.figures import plot_anomalies, plot_spectra
    from convsuite.materials.infer import detect as run_detection
    from convsuite.materials.infer import load_network

    signal = read_spectrum_image(cube)
    net = load_network(weights, device)
    with _bar() as bar:
        task = bar.add_task("scoring", total=signal.data.shape[0])
        found = run_detection(
            signal,
            net,
            window=window,
            fit=fit,
            fit_seconds=fit_seconds,
            seed=seed,
            device=device,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            source=str(cube),
            threshold_method=threshold_method,
            false_alarm=false_alarm,
            reference=reference,
            precision=precision,
        )
    truth = signal.metadata.get_item("Anomalies.mask", None)
    figures = [plot_anomalies(found, truth, cube.name), plot_spectra(found)]
    scores = hs.signals.Signal2D(found.scores)
    mask = hs.signals.Signal2D(found.mask)
    for image in (scores, mask):
        for target, origin in zip(
            image.axes_manager.signal_axes, signal.axes_manager.navigation_axes, strict=True
        ):
            target.name, target.units = origin.name, origin.units
            target.offset, target.scale = origin.offset, origin.scale
    scores.metadata.General.title = f"anomaly score ({score_label(found.reference)})"
    scores.metadata.set_item("Anomalies.nll", found.nll)
    mask.metadata.General.title = f"anomalous pixels ({threshold_method} threshold)"
    out.mkdir(parents=True, exist_ok=True)
    write_signal(scores, outputs[0])
    write_signal(mask, outputs[1])
    save_figure(figures[0], outputs[2])
    save_figure(figures[1], outputs[3])
    summary = {
        "n_pixels": int(found.scores.size),
        "n_flagged": int(found.mask.sum()),
        "threshold": found.threshold,
        "threshold_method": threshold_method,
        "false_alarm": false_alarm if threshold_method == "null" else None,
        "reference": reference,
        "precision": precision,
        "window_ev": list(found.window_ev),
        "fit_seconds": round(found.fit_seconds, 1),
    }
    with atomic_write(out / "summary.json") as handle:
        json.dump(summary, handle, indent=2)
    typer.echo(f"{cube}: {summary['n_flagged']} of {summary['n_pixels']} pixels flagged -> {out}")


def _train_options(accelerator: str, devices: str, strategy: str, num_nodes: int) -> dict:
    return trainer_settings(accelerator, devices, strategy, num_nodes)


@app.command(
    epilog="Example: eels-anomaly fit cube.hspy --bulk-region 0 0 48 64 --out my_vae.safetensors"
)
def fit(
    cube: Annotated[Path, typer.Argument(help="Spectrum image holding a defect-free region.")],
    bulk_region: Annotated[
        tuple[int, int, int, int],
        typer.Option(
            help="Bulk pixels: y0 x0 y1 x1 (end exclusive), >= 48 x 24.", metavar="Y0 X0 Y1 X1"
        ),
    ],
    out: Annotated[Path, typer.Option(help="Checkpoint to write (.safetensors; card beside it).")],
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of 256 random 24x24 shards.")] = 20,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    weights: Weights = None,
    batch_size: BatchSize = 8,
    seed: Seed = 0,
    accelerator: Accelerator = "cpu",
    devices: Devices = "1",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Train the VAE on a bulk region of your own cube (the honest way to meet a new material)."""
    _quiet()
    if out.suffix != ".safetensors":
        raise InputError(out, "the checkpoint must end in .safetensors")
    guard_outputs([out, out.with_suffix(".json")], [cube])
    settings = _train_options(accelerator, devices, strategy, num_nodes)
    import tempfile

    from convsuite.materials.data import energy_axis, read_spectrum_image
    from convsuite.materials.data.preprocess import prepare
    from convsuite.materials.infer import grid_of, load_network
    from convsuite.materials.train import fit_vae, save_network

    signal = read_spectrum_image(cube)
    y0, x0, y1, x1 = bulk_region
    height, width = signal.data.shape[:2]
    if not (0 <= y0 < y1 <= height and 0 <= x0 < x1 <= width):
        raise InputError("--bulk-region", f"{bulk_region} is not inside the {height} x {width} map")
    net = load_network(weights).train()
    region = signal.data[y0:y1, x0:x1]
    prepared = prepare(region, energy_axis(signal, cube), grid_of(net), str(cube))
    with tempfile.TemporaryDirectory(prefix="eels-fit-") as folder:
        _, module, metrics = fit_vae(
            net,
            [prepared.network_view(net.config.spatial_mean)],
            folder,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            progress=sys.stderr.isatty(),
            trainer_options=settings,
        )
    save_network(module.net, out, recipe_command(), f"{cube} bulk region {bulk_region}", metrics)
    typer.echo(f"wrote {out} (held-out loss {metrics['val_loss']:.2f})")


@app.command(epilog="Example: eels-anomaly train --preset small --epochs 60 --out runs/")
def train(
    out: Annotated[Path, typer.Option(help="Output folder (eels_vae.safetensors + card).")],
    preset: Annotated[str, typer.Option(help="paper, small or tiny.")] = "small",
    cubes: Annotated[int, typer.Option(min=1, help="Simulated bulk cubes.")] = 8,
    size: Annotated[int, typer.Option(min=48, help="Pixels per side of each cube.")] = 64,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of --shards random shards.")] = 40,
    shards: Annotated[int, typer.Option(min=1, help="Random 24x24 shards per epoch.")] = 256,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 2e-3,
    kl_warmup: Annotated[
        int, typer.Option(min=0, help="Epochs over which the KL weight rises from 0 to beta.")
    ] = 0,
    max_minutes: Annotated[
        float | None, typer.Option(min=0.1, help="Wall-clock cap of the training, minutes.")
    ] = None,
    cell: Annotated[
        int | None,
        typer.Option(help="Pixels per side sharing one latent: 4 (reference), 2, 1 (preset's)."),
    ] = None,
    spatial_mean: Annotated[
        bool | None,
        typer.Option(
            "--spatial-mean/--no-spatial-mean",
            help="Feed the reference's 3x3 mean, or each pixel's own spectrum (preset's).",
        ),
    ] = None,
    spatial_kernel: Annotated[
        int | None,
        typer.Option(
            help="Spatial kernel extent: 3 (reference) or 1 (spectral only; needs --cell 1) "
            "(preset's)."
        ),
    ] = None,
    beta: Annotated[
        float | None,
        typer.Option(min=0, help="Weight of the KL term (preset's: the reference's 1.2)."),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            help="Continue from these weights (bundled name or .safetensors); --cell, "
            "--spatial-mean, --spatial-kernel and --beta, if given, must equal theirs."
        ),
    ] = None,
    batch_size: BatchSize = 8,
    seed: Seed = 0,
    accelerator: Accelerator = "cpu",
    devices: Devices = "1",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Train the VAE on simulated defect-free cubes (seeds from 1000 + seed)."""
    _quiet()
    settings = _train_options(accelerator, devices, strategy, num_nodes)
    from convsuite.core_ops.hub import model_config
    from convsuite.materials.infer import load_network
    from convsuite.materials.model import EELSVAE
    from convsuite.materials.train import bulk_cubes, fit_vae, save_network

    if preset not in ("paper", "small", "tiny"):
        raise InputError("--preset", f"must be paper, small or tiny, got {preset!r}")
    if cell not in (None, 1, 2, 4):
        raise InputError("--cell", f"must be 1, 2 or 4, got {cell}")
    if spatial_kernel not in (None, 1, 3):
        raise InputError("--spatial-kernel", f"must be 1 or 3, got {spatial_kernel}")
    given = (
        ("cell", cell),
        ("spatial_mean", spatial_mean),
        ("spatial_kernel", spatial_kernel),
        ("beta", beta),
    )
    changes = {k: v for k, v in given if v is not None}
    if init:
        net = load_network(init).train()
        for name, value in changes.items():
            if getattr(net.config, name) != value:
                option = "--" + name.replace("_", "-")
                raise InputError(
                    option,
                    f"{value} differs from the --init weights' {name} "
                    f"({getattr(net.config, name)}): a continuation keeps their config",
                )
    else:
        base = model_config("eels_vae", preset)
        kernel = changes.get("spatial_kernel", base.spatial_kernel)
        if kernel == 1 and changes.get("cell", base.cell) != 1:
            raise InputError("--spatial-kernel", "1 needs --cell 1")
        net = EELSVAE(dataclasses.replace(base, **changes))
    c = net.config
    data = bulk_cubes(
        c.energy_start_ev, c.energy_stop_ev, c.n_energy, cubes, size, 1000 + seed, c.spatial_mean
    )
    _, module, metrics = fit_vae(
        net,
        data,
        out,
        epochs=epochs,
        shards_per_epoch=shards,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        progress=sys.stderr.isatty(),
        trainer_options=settings,
        kl_warmup_epochs=kl_warmup,
        max_seconds=None if max_minutes is None else 60.0 * max_minutes,
    )
    path = save_network(
        module.net,
        out / "eels_vae.safetensors",
        recipe_command(),
        f"{cubes} simulated defect-free {size}x{size} Fe/Mn oxide cubes (convsuite.materials "
        f"simulate_cube seeds {1000 + seed}-{999 + seed + cubes}; second phase, mixed valence, "
        "thickness wedge, 0.3 eV drift)",
        metrics,
    )
    typer.echo(
        f"wrote {path} (held-out loss {metrics['val_loss']:.2f}, {metrics['seconds']:.0f} s)"
    )


@app.command(epilog="Example: eels-anomaly simulate --seed 3 --out cube.hspy --shift 2 --count 500")
def simulate(
    out: Annotated[Path, typer.Option(help="Cube to write (.hspy).")],
    seed: Seed = 0,
    size: Annotated[int, typer.Option(min=4, help="Pixels per side.")] = 64,
    kind: Annotated[str, typer.Option(help="shift, l3_shift, broadening or intensity.")] = "shift",
    shift: Annotated[
        float, typer.Option(min=0, help="Anomaly magnitude (eV; relative for intensity).")
    ] = 2.0,
    count: Annotated[int, typer.Option(min=0, help="Anomalous pixels.")] = 500,
    cluster: Annotated[int, typer.Option(min=1, help="Pixels per anomaly cluster.")] = 1,
) -> None:
    """Write a simulated Fe/Mn oxide spectrum image with its ground-truth mask in metadata."""
    _quiet()
    if out.suffix != ".hspy":
        raise InputError(out, "simulated cubes are written as .hspy")
    from convsuite.materials.data import AnomalySpec, simulate_cube, write_signal

    anomalies = [AnomalySpec(kind, shift, count, cluster)] if count else []
    write_signal(simulate_cube((size, size), seed=seed, anomalies=anomalies), out)
    typer.echo(f"wrote {out}")


@app.command(
    epilog="Example: eels-anomaly evaluate --out evaluation/ --shifts 0.5 1 1.5 2 3 5 8 11"
)
def evaluate(
    out: Annotated[Path, typer.Option(help="Folder for evaluation.json and evaluation.png.")],
    shifts: Annotated[
        str, typer.Option(help="Shift magnitudes, eV, comma or space separated.")
    ] = "0.5,1,1.5,2,3,5,8,11",
    count: Annotated[int, typer.Option(min=1, help="Anomalous pixels per cube.")] = 500,
    size: Annotated[int, typer.Option(min=48, help="Pixels per side.")] = 64,
    fit: Annotated[bool, typer.Option(help="Fine-tune on each cube (as detect does).")] = False,
    fit_seconds: Annotated[float, typer.Option(min=0, help="Fine-tuning budget, s.")] = 45.0,
    nmf: Annotated[bool, typer.Option(help="Include NMF-3/4/5 (slower).")] = True,
    weights: Weights = None,
    threshold_method: Threshold = "null",
    false_alarm: FalseAlarm = 5e-4,
    seed: Seed = 0,
) -> None:
    """F1, precision, recall, AUROC of the VAE, PCA-3/4/5, NMF-3/4/5 and the ring median."""
    _quiet()
    from convsuite.materials.scoring import check_threshold

    check_threshold(threshold_method, false_alarm)
    try:
        values = [float(v) for v in shifts.replace(",", " ").split()]
    except ValueError:
        raise InputError("--shifts", f"must be numbers, got {shifts!r}") from None
    if not values or min(values) <= 0:
        raise InputError("--shifts", "give at least one positive shift")
    from convsuite.core_ops.figures import save_figure
    from convsuite.core_ops.io import atomic_write
    from convsuite.materials.evaluate import BASELINES
    from convsuite.materials.evaluate import evaluate as run_evaluation
    from convsuite.materials.figures import plot_evaluation
    from convsuite.materials.infer import load_network

    methods = [m for m in BASELINES if nmf or not m.startswith("NMF")]
    net = load_network(weights)
    with _bar() as bar:
        task = bar.add_task("evaluating", total=len(values))
        results = run_evaluation(
            net,
            values,
            count,
            size,
            seed,
            fit,
            fit_seconds,
            methods,
            progress=lambda _: bar.advance(task),
            threshold_method=threshold_method,
            false_alarm=false_alarm,
        )
    figure = plot_evaluation(results, threshold_method)
    out.mkdir(parents=True, exist_ok=True)
    pearson = {
        name: {"normal_mean": float(normal.mean()), "anomalous_mean": float(anomalous.mean())}
        for name, (normal, anomalous) in results["histograms"].items()
    }
    report = {
        "threshold": {"method": threshold_method, "false_alarm": false_alarm},
        "fit_seconds": fit_seconds if fit else 0.0,
        "shifts": results["shifts"],
        "clusters_2ev": results["clusters"],
        "normal_only_flagged": results["normal_only"],
        "pearson_at_2ev": pearson,
    }
    with atomic_write(out / "evaluation.json") as handle:
        json.dump(report, handle, indent=2)
    save_figure(figure, out / "evaluation.png")
    for shift, rows in results["shifts"].items():
        line = "  ".join(f"{name} {m['f1']:.3f}" for name, m in rows.items())
        typer.echo(f"shift {shift:g} eV F1: {line}")
    for cluster, rows in results["clusters"].items():
        line = "  ".join(f"{name} {m['f1']:.3f}" for name, m in rows.items())
        typer.echo(f"2 eV clusters of {cluster} F1: {line}")
    line = "  ".join(f"{name} {v:.4f}" for name, v in results["normal_only"].items())
    typer.echo(f"anomaly-free cube, flagged fraction: {line}")


def main() -> None:
    """The ``eels-anomaly`` console script."""
    run(app)


if __name__ == "__main__":
    main()
