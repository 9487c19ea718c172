"""Command lines: ``cosmo-inpaint``, ``cosmo-simulate``, ``cosmo-train``, ``cosmo-evaluate``.

Each console script is a ``*_main`` function running its typer app through
:func:`convsuite.core_ops.cli.run`: bad input (not a HEALPix map, a header claiming more pixels
than memory allows, a mask of another Nside, everything masked, a map of zeros, +-inf or
non-physical values outside the mask, an output that would replace an input) prints one line
naming the file and exits with status 2, and no output file is written for it (outputs are written
to a temporary name, then renamed). This module imports neither numpy nor torch nor healpy: each
command imports its pipeline when it runs, so ``--help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convsuite.core_ops.cli import (
    Accelerator,
    BatchSize,
    Device,
    Devices,
    NumNodes,
    Seed,
    Strategy,
    guard_outputs,
    output_stems,
    recipe_command,
    run,
    trainer_settings,
)
from convsuite.core_ops.errors import InputError

__all__ = [
    "evaluate_app",
    "evaluate_main",
    "inpaint_app",
    "inpaint_main",
    "simulate_app",
    "simulate_main",
    "train_app",
    "train_main",
]

_SETTINGS = {"add_completion": False, "pretty_exceptions_enable": False}
inpaint_app = typer.Typer(**_SETTINGS)
simulate_app = typer.Typer(**_SETTINGS)
train_app = typer.Typer(**_SETTINGS)
evaluate_app = typer.Typer(**_SETTINGS)

_MODES = ("mean", "realization")
_FIGURES = ("maps", "spectrum")  # <stem>_maps.png, <stem>_spectrum.png
_WEIGHTS_HELP = (
    "Bundled checkpoint name (skyrecon_nside128) or a .safetensors file from cosmo-train; "
    "default: the bundled one trained at the Nside the network runs at."
)


def _map_outputs(maps: list[Path], out: Path | None) -> tuple[list[Path], list[str]]:
    """The output file of each map, and the distinct name stems its figures use.

    Beside each map without ``out``; in the folder ``out`` for several maps (names made distinct
    by :func:`~convsuite.core_ops.cli.output_stems` when maps in different folders share a name);
    ``out`` itself for one map unless it is a folder.
    """
    stems = output_stems(maps)
    if out is None:
        return [m.with_name(f"{m.stem}_inpainted.fits") for m in maps], stems
    if len(maps) > 1 or out.is_dir():
        if out.exists() and not out.is_dir():
            raise InputError(out, "is a file, but several maps need an output folder")
        if len(maps) > 1 and out.suffix.lower() in (".fits", ".fit", ".fz"):
            raise InputError(out, "several maps need an output folder, not a .fits file")
        return [out / f"{stem}_inpainted.fits" for stem in stems], stems
    return [out], stems


@inpaint_app.command(
    epilog="Example: cosmo-inpaint sky.fits --mask mask.fits --out sky_inpainted.fits --plots figs/"
    "  |  many maps: cosmo-inpaint maps/*.fits --mask mask.fits --out inpainted/"
)
def inpaint(
    maps: Annotated[list[Path], typer.Argument(help="HEALPix FITS maps (RING or NESTED), in muK.")],
    mask: Annotated[
        Path | None, typer.Option(help="FITS mask, 1 = observed (else UNSEEN/NaN).")
    ] = None,
    field: Annotated[int, typer.Option(min=0, help="Column of each map to inpaint.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Output file, or folder for many maps.")] = None,
    plots: Annotated[
        Path | None, typer.Option(help="Write Mollweide and spectrum PNGs in this folder.")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="The full sky, for residual maps and spectra.")
    ] = None,
    regrade_mask: Annotated[bool, typer.Option(help="ud_grade a mask of another Nside.")] = False,
    mode: Annotated[
        str, typer.Option(help="mean (lowest error) or realization (right power).")
    ] = "mean",
    seed: Seed = 0,
    weights: Annotated[str | None, typer.Option(help=_WEIGHTS_HELP)] = None,
    nside: Annotated[
        int | None,
        typer.Option(
            help="Run the network at this Nside (the rim stays at the map's; default: the map's)."
        ),
    ] = None,
    device: Device = "cpu",
    rim_depth: Annotated[
        int,
        typer.Option(
            min=0,
            max=6,  # the filter's 9-pixel data radius reaches 6 steps deep
            help="Hole pixels this near the data get the local Wiener filter (0: none).",
        ),
    ] = 3,
) -> None:
    """Fill the masked pixels of full-sky CMB temperature maps with SkyReconNet."""
    if mode not in _MODES:
        raise InputError("--mode", f"must be mean or realization, got {mode!r}")
    targets, stems = _map_outputs(maps, out)
    if plots is not None and plots.exists() and not plots.is_dir():
        raise InputError(plots, "is a file, but --plots needs a folder")
    figures = [] if plots is None else [plots / f"{s}_{k}.png" for s in stems for k in _FIGURES]
    guard_outputs([*targets, *figures], [*maps, *(p for p in (mask, truth) if p is not None)])

    from convsuite.cosmo.data import sky_map_nside

    # every header first (sizes, Nside, cut-short files): a bad file among many stops the run
    # before any output is written
    for path in [*maps, *([truth] if truth is not None else [])]:
        sky_map_nside(path, field)
    if mask is not None:
        sky_map_nside(mask)

    from rich.console import Console
    from rich.progress import track

    from convsuite.cosmo.data import apply_mask, read_mask, read_sky_map, write_sky_map
    from convsuite.cosmo.infer import inpaint_nest, pretrained_network

    reference = read_sky_map(truth, field) if truth is not None else None
    networks, masks = {}, {}
    console = Console(stderr=True, soft_wrap=True)
    jobs = list(zip(maps, targets, stems, strict=True))
    for path, target, stem in track(jobs, description="inpainting", disable=len(maps) < 2):
        sky = read_sky_map(path, field)
        if mask is not None and sky.nside not in masks:
            masks[sky.nside] = read_mask(mask, sky.nside, regrade_mask)
        sky = apply_mask(sky, masks.get(sky.nside))
        if reference is not None and reference.nside != sky.nside:
            raise InputError(truth, f"Nside {reference.nside} but {path} has Nside {sky.nside}")
        run_nside = nside or sky.nside
        if run_nside not in networks:
            networks[run_nside] = pretrained_network(run_nside, weights, device)
        filled = inpaint_nest(
            networks[run_nside],
            sky.values,
            sky.observed,
            mode,
            seed,
            rim_depth=rim_depth,
            nside=run_nside,
        )
        write_sky_map(sky.replace(values=filled), target, history=f"convsuite cosmo-inpaint {mode}")
        if plots is not None:
            _plot(sky, filled, None if reference is None else reference.values, plots, stem)
        console.print(f"{path} -> {target} (f_sky {sky.f_sky:.3f}, Nside {sky.nside})")


def _plot(sky, filled, reference, folder: Path, stem: str) -> None:
    """Write ``<stem>_maps.png`` and ``<stem>_spectrum.png`` of one inpainted map in ``folder``."""
    from convsuite.core_ops.figures import save_figure
    from convsuite.cosmo.figures import plot_maps, plot_spectra
    from convsuite.cosmo.metrics import power_spectrum

    maps = plot_maps(sky.values, sky.observed, filled, reference, stem)
    save_figure(maps, folder / f"{stem}_maps.png")
    spectra = {"inpainted": filled}
    if reference is not None:
        spectra["truth"] = reference
    band = power_spectrum(reference if reference is not None else filled)
    save_figure(plot_spectra(spectra, band), folder / f"{stem}_spectrum.png")


@simulate_app.command(
    epilog="Example: cosmo-simulate --n 3 --nside 128 --seed 0 --out sims/  "
    "(then: cosmo-inpaint sims/sky_0000.fits --truth sims/truth_0000.fits --plots figs/)"
)
def simulate(
    n: Annotated[int, typer.Option(min=1, help="Number of skies.")] = 1,
    nside: Annotated[int, typer.Option(help="HEALPix Nside.")] = 128,
    seed: Annotated[int, typer.Option(help="First seed (sky i uses seed + i).")] = 0,
    f_sky: Annotated[float, typer.Option(help="Observed fraction of the galactic cut.")] = 0.75,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("sims"),
) -> None:
    """Simulate LCDM CMB skies with a galactic + point-source mask (FITS, muK, RING)."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, but --out needs a folder")

    import numpy as np
    from rich.console import Console
    from rich.progress import track

    from convsuite.cosmo.data import SkyMap, nside_of, simulate_sky, write_sky_map

    nside_of(12 * nside * nside, "--nside")
    for i in track(range(n), description="simulating", disable=n < 2):
        sky = simulate_sky(nside, seed + i, f_sky=f_sky)
        cards = [("COORDSYS", "G", "Galactic"), ("SIMSEED", seed + i, "simulate_sky seed")]
        data = np.where(sky.observed, sky.truth, np.float32(-1.6375e30))
        base = SkyMap(data, sky.observed, "RING", "uK_CMB", "TEMPERATURE", cards, "sim")
        write_sky_map(base, out / f"sky_{i:04d}.fits")
        write_sky_map(base.replace(values=sky.truth), out / f"truth_{i:04d}.fits")
        mask = base.replace(values=sky.observed.astype(np.float32), unit="", column="MASK")
        write_sky_map(mask, out / f"mask_{i:04d}.fits")
    Console(stderr=True, soft_wrap=True).print(f"wrote {n} skies (sky, truth, mask) to {out}")


@train_app.command(
    epilog="Example: cosmo-train --nside 128 --epochs 4 --n-train 512 --out runs/nside128  "
    "|  multi-GPU: cosmo-train --accelerator gpu --devices 4 --strategy ddp"
)
def train(
    nside: Annotated[int, typer.Option(help="Nside of the training skies.")] = 128,
    out: Annotated[Path, typer.Option(help="Logs and skyrecon.safetensors.")] = Path(
        "runs/skyrecon"
    ),
    preset: Annotated[str, typer.Option(help="Architecture preset: small or tiny.")] = "small",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs.")] = 4,
    n_train: Annotated[int, typer.Option(min=1, help="Simulated skies per epoch.")] = 512,
    n_val: Annotated[int, typer.Option(min=1, help="Validation skies.")] = 16,
    batch_size: BatchSize = 2,
    alpha: Annotated[float, typer.Option(help="SSIM weight of the loss.")] = 0.5,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    seed: Seed = 0,
    init: Annotated[
        str | None,
        typer.Option(help="Start from these weights: a bundled name or a .safetensors file."),
    ] = None,
    max_minutes: Annotated[float | None, typer.Option(help="Stop after this many minutes.")] = None,
    prior_family: Annotated[
        str,
        typer.Option(
            help="wide: each sky's beam (5-60'), amplitude (+-20%), tilt (n_s 0.92-1.00) and "
            "noise (0-30 muK') drawn (the bundled weights); lcdm: LCDM, 2-pixel beam, 1 muK'."
        ),
    ] = "wide",
    workers: Annotated[int, typer.Option(min=0, help="DataLoader workers (simulation).")] = 0,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Train SkyReconNet on simulated skies (Lightning: one CPU to multi-node DDP)."""
    if prior_family not in ("wide", "lcdm"):
        raise InputError("--prior-family", f"must be wide or lcdm, got {prior_family!r}")
    settings = trainer_settings(accelerator, devices, strategy, num_nodes)
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, but --out needs a folder")

    from rich.console import Console

    from convsuite.core_ops.hub import model_config
    from convsuite.cosmo.data import TRAINING_FAMILY
    from convsuite.cosmo.train import TrainingSkies, fit_skyrecon

    config = model_config("skyrecon", preset)
    try:
        config.levels(nside)
    except ValueError as error:
        raise InputError("--nside", f"{error} (preset {preset})") from None
    if max_minutes is not None:
        settings["max_time"] = {"minutes": max_minutes}
    weights = fit_skyrecon(
        config,
        out,
        TrainingSkies(nside=nside, family=TRAINING_FAMILY if prior_family == "wide" else None),
        n_train,
        n_val,
        epochs,
        batch_size,
        alpha,
        lr,
        seed,
        init,
        workers,
        recipe=recipe_command(),
        **settings,
    )
    Console(stderr=True, soft_wrap=True).print(f"wrote {weights}")


_EVALUATION_KEYS = (
    "mse",
    "mse_over_wiener",
    "ssim",
    "correlation",
    "cv_fraction",
    "cv_fraction_per_bin",
    "seconds",
)


@evaluate_app.command(epilog="Example: cosmo-evaluate --nside 128 --n 3 --out eval128.json")
def evaluate(
    nside: Annotated[int, typer.Option(help="Nside of the held-out skies.")] = 128,
    n: Annotated[int, typer.Option(min=1, help="Number of held-out skies (seeds 0..n-1).")] = 3,
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = (
        "skyrecon,skyrecon-cr,diffusive,wiener,constrained"
    ),
    weights: Annotated[str | None, typer.Option(help=_WEIGHTS_HELP)] = None,
    f_sky: Annotated[float, typer.Option(help="Galactic cut's observed fraction.")] = 0.75,
    wiener_iterations: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CG budget of the Wiener filter and CR (default: 300 to Nside 64, 1000 above).",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write every row as JSON here.")] = None,
) -> None:
    """SkyReconNet vs diffusive inpainting, Wiener filter and constrained realization."""
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    if out is not None and out.is_dir():
        raise InputError(out, "is a folder, but --out needs a file name")

    import json

    from rich.console import Console
    from rich.table import Table

    from convsuite.core_ops.io import atomic_write
    from convsuite.cosmo.evaluation import METHODS, evaluate_methods, summarize

    unknown = sorted(set(chosen) - set(METHODS))
    if unknown or not chosen:
        raise InputError("--methods", f"unknown {unknown}; choose from {', '.join(METHODS)}")
    console = Console(stderr=True, soft_wrap=True)
    rows = evaluate_methods(nside, range(n), chosen, weights, f_sky, console.log, wiener_iterations)
    table = Table(title=f"held-out skies: Nside {nside}, f_sky {f_sky} + point sources, n = {n}")
    for column in ("method", *_EVALUATION_KEYS):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, means in summarize(rows).items():
        table.add_row(method, *(f"{means[k]:.3f}" if k in means else "-" for k in _EVALUATION_KEYS))
    Console(width=max(Console().width, 130)).print(table)
    if out is not None:
        with atomic_write(out) as handle:
            json.dump(rows, handle, indent=2)


def inpaint_main() -> None:
    """Console script ``cosmo-inpaint``."""
    run(inpaint_app)


def simulate_main() -> None:
    """Console script ``cosmo-simulate``."""
    run(simulate_app)


def train_main() -> None:
    """Console script ``cosmo-train``."""
    run(train_app)


def evaluate_main() -> None:
    """Console script ``cosmo-evaluate``."""
    run(evaluate_app)
