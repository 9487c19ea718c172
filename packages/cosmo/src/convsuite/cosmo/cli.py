"""Command lines: ``cosmo-inpaint``, ``cosmo-simulate``, ``cosmo-train``, ``cosmo-evaluate``.

Bad input (not a HEALPix map, mask of another Nside, everything masked, a map of zeros, +-inf
outside the mask) prints one line naming the file and exits with status 2, and no output file is
written (outputs are written to a temporary name, then renamed).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

from convsuite.core_ops.cli import input_error_exit
from convsuite.core_ops.io import InputError, atomic_write

__all__ = ["evaluate_app", "inpaint_app", "simulate_app", "train_app"]

inpaint_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
simulate_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
train_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
evaluate_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _output_path(source: Path, out: Path | None, many: bool) -> Path:
    if out is None:
        return source.with_name(f"{source.stem}_inpainted.fits")
    if many or out.is_dir():
        return out / f"{source.stem}_inpainted.fits"
    return out


@inpaint_app.command(
    epilog="Example: cosmo-inpaint sky.fits --mask mask.fits --out sky_inpainted.fits --plots figs/"
    "  |  many maps: cosmo-inpaint maps/*.fits --mask mask.fits --out inpainted/"
)
def inpaint(
    maps: list[Path] = typer.Argument(..., help="HEALPix FITS maps (RING or NESTED), in muK."),
    mask: Path | None = typer.Option(None, help="FITS mask, 1 = observed (else UNSEEN/NaN)."),
    field: int = typer.Option(0, help="Column of each map to inpaint."),
    out: Path | None = typer.Option(None, help="Output file, or folder for many maps."),
    plots: Path | None = typer.Option(None, help="Write Mollweide and spectrum PNGs here."),
    truth: Path | None = typer.Option(None, help="The full sky, for residual maps and spectra."),
    regrade_mask: bool = typer.Option(False, help="ud_grade a mask of another Nside."),
    mode: str = typer.Option("mean", help="mean (lowest error) or realization (right power)."),
    seed: int = typer.Option(0, help="Prior draw of --mode realization."),
    weights: Path | None = typer.Option(None, help="Checkpoint from cosmo-train (else bundled)."),
    nside: int | None = typer.Option(
        None, help="Run the network at this Nside (the rim stays at the map's; default: the map's)."
    ),
    device: str = typer.Option("cpu", help="cpu or cuda."),
    rim_depth: int = typer.Option(
        3,
        min=0,
        max=6,  # the filter's 9-pixel data radius reaches 6 steps deep
        help="Hole pixels this near the data get the local Wiener filter (0: none).",
    ),
) -> None:
    """Fill the masked pixels of full-sky CMB temperature maps with SkyReconNet."""
    from convsuite.cosmo.data import apply_mask, read_mask, read_sky_map, write_sky_map
    from convsuite.cosmo.figures import plot_maps, plot_spectra
    from convsuite.cosmo.infer import inpaint_nest, pretrained_network

    if mode not in ("mean", "realization"):
        raise input_error_exit(InputError("--mode", f"must be mean or realization, got {mode}"))
    many = len(maps) > 1
    if many and out is not None and out.suffix == ".fits":
        raise input_error_exit(InputError(out, "several maps need an output folder"))
    models: dict[int, object] = {}
    for path in track(maps, description="inpainting", disable=not many):
        try:
            sky = read_sky_map(path, field)
            observed = read_mask(mask, sky.nside, regrade_mask) if mask is not None else None
            sky = apply_mask(sky, observed)
            true_sky = read_sky_map(truth, field) if truth is not None else None
            if true_sky is not None and true_sky.nside != sky.nside:
                raise InputError(truth, f"Nside {true_sky.nside} but the map has {sky.nside}")
            run_nside = nside or sky.nside
            if run_nside not in models:
                models[run_nside] = pretrained_network(run_nside, weights, device)
        except InputError as error:
            raise input_error_exit(error) from None
        net = models[run_nside]
        filled = inpaint_nest(
            net,  # type: ignore[arg-type]
            sky.values,
            sky.observed,
            mode,
            seed,
            rim_depth=rim_depth,
            nside=run_nside,
        )
        target = _output_path(path, out, many)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_sky_map(sky.replace(values=filled), target, history=f"convsuite cosmo-inpaint {mode}")
        if plots is not None:
            reference = None if true_sky is None else true_sky.values
            plot_maps(
                sky.values,
                sky.observed,
                filled,
                plots / f"{path.stem}_maps.png",
                reference,
                path.stem,
            )
            spectra = {"inpainted": filled}
            if reference is not None:
                spectra["truth"] = reference
            from convsuite.cosmo.metrics import power_spectrum

            plot_spectra(
                spectra,
                plots / f"{path.stem}_spectrum.png",
                power_spectrum(reference if reference is not None else filled),
            )
        Console(stderr=True).print(f"{path} -> {target} (f_sky {sky.f_sky:.3f}, Nside {sky.nside})")


@simulate_app.command(
    epilog="Example: cosmo-simulate --n 3 --nside 128 --seed 0 --out sims/  "
    "(then: cosmo-inpaint sims/sky_0000.fits --truth sims/truth_0000.fits --plots figs/)"
)
def simulate(
    n: int = typer.Option(1, help="Number of skies."),
    nside: int = typer.Option(128, help="HEALPix Nside."),
    seed: int = typer.Option(0, help="First seed (sky i uses seed + i)."),
    f_sky: float = typer.Option(0.75, help="Observed fraction of the galactic cut."),
    out: Path = typer.Option(Path("sims"), help="Output folder."),
) -> None:
    """Simulate LCDM CMB skies with a galactic + point-source mask (FITS, muK, RING)."""
    from convsuite.cosmo.data import SkyMap, nside_of, simulate_sky, write_sky_map

    try:
        nside_of(12 * nside * nside, "--nside")
    except InputError as error:
        raise input_error_exit(error) from None
    for i in track(range(n), description="simulating", disable=n < 2):
        sky = simulate_sky(nside, seed + i, f_sky=f_sky)
        cards = [("COORDSYS", "G", "Galactic"), ("SIMSEED", seed + i, "simulate_sky seed")]
        data = np.where(sky.observed, sky.truth, np.float32(-1.6375e30))
        base = SkyMap(data, sky.observed, "RING", "uK_CMB", "TEMPERATURE", cards, "sim")
        write_sky_map(base, out / f"sky_{i:04d}.fits")
        write_sky_map(base.replace(values=sky.truth), out / f"truth_{i:04d}.fits")
        mask = base.replace(values=sky.observed.astype(np.float32), unit="", column="MASK")
        write_sky_map(mask, out / f"mask_{i:04d}.fits")
    Console(stderr=True).print(f"wrote {n} skies (sky, truth, mask) to {out}")


@train_app.command(
    epilog="Example: cosmo-train --nside 128 --epochs 4 --n-train 512 --out runs/nside128"
)
def train(
    nside: int = typer.Option(128, help="Nside of the training skies."),
    out: Path = typer.Option(Path("runs/skyrecon"), help="Logs and skyrecon.safetensors."),
    preset_name: str = typer.Option("small", "--preset", help="small or tiny."),
    epochs: int = typer.Option(4, help="Epochs."),
    n_train: int = typer.Option(512, help="Simulated skies per epoch."),
    n_val: int = typer.Option(16, help="Validation skies."),
    batch_size: int = typer.Option(2, help="Skies per step."),
    alpha: float = typer.Option(0.5, help="SSIM weight of the loss."),
    lr: float = typer.Option(2e-3, help="Peak learning rate."),
    seed: int = typer.Option(0, help="Seed."),
    init: Path | None = typer.Option(None, help="Start from these weights."),
    max_minutes: float | None = typer.Option(None, help="Stop after this many minutes."),
    accelerator: str = typer.Option("auto", help="Lightning accelerator (cpu, gpu)."),
    devices: str = typer.Option("auto", help="Lightning devices."),
    workers: int = typer.Option(0, help="DataLoader workers (simulation)."),
) -> None:
    """Train SkyReconNet on simulated skies (Lightning; DDP with --devices)."""
    from convsuite.core_ops.hub import model_config
    from convsuite.cosmo.train import TrainingSkies, fit_skyrecon

    try:
        config = model_config("skyrecon", preset_name)
        config.levels(nside)
    except ValueError as error:
        raise input_error_exit(InputError("--nside/--preset", str(error))) from None
    extra = {} if max_minutes is None else {"max_time": {"minutes": max_minutes}}
    weights = fit_skyrecon(
        config,
        out,
        TrainingSkies(nside=nside),
        n_train,
        n_val,
        epochs,
        batch_size,
        alpha,
        lr,
        seed,
        init,
        workers,
        recipe="cosmo-train " + " ".join(sys.argv[1:]),
        accelerator=accelerator,
        devices=devices,
        **extra,
    )
    Console(stderr=True).print(f"wrote {weights}")


@evaluate_app.command(epilog="Example: cosmo-evaluate --nside 128 --n 3 --out eval128.json")
def evaluate(
    nside: int = typer.Option(128, help="Nside of the held-out skies."),
    n: int = typer.Option(3, help="Number of held-out skies (seeds 0..n-1)."),
    methods: str = typer.Option(
        ",".join(("skyrecon", "skyrecon-cr", "diffusive", "wiener", "constrained")),
        help="Comma-separated methods.",
    ),
    weights: Path | None = typer.Option(None, help="Checkpoint (else bundled for --nside)."),
    f_sky: float = typer.Option(0.75, help="Galactic cut's observed fraction."),
    wiener_iterations: int | None = typer.Option(
        None,
        min=1,
        help="CG budget of the Wiener filter and CR (default: 300 to Nside 64, 1000 above).",
    ),
    out: Path | None = typer.Option(None, help="Write every row as JSON here."),
) -> None:
    """SkyReconNet vs diffusive inpainting, Wiener filter and constrained realization."""
    from convsuite.cosmo.evaluation import evaluate_methods, summarize

    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    try:
        console = Console(stderr=True)
        rows = evaluate_methods(
            nside, range(n), chosen, weights, f_sky, console.log, wiener_iterations
        )
    except (InputError, ValueError) as error:
        raise input_error_exit(
            error if isinstance(error, InputError) else InputError("--methods", str(error))
        ) from None
    keys = (
        "mse",
        "mse_over_wiener",
        "ssim",
        "correlation",
        "cv_fraction",
        "cv_fraction_per_bin",
        "seconds",
    )
    table = Table(title=f"held-out skies: Nside {nside}, f_sky {f_sky} + point sources, n = {n}")
    for column in ("method", *keys):
        table.add_column(column, justify="left" if column == "method" else "right")
    for method, means in summarize(rows).items():
        table.add_row(method, *(f"{means[k]:.3f}" if k in means else "-" for k in keys))
    Console(width=max(Console().width, 130)).print(table)
    if out is not None:
        with atomic_write(out) as handle:
            json.dump(rows, handle, indent=2)
