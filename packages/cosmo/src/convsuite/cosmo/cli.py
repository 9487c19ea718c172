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
    Precision,
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
    "  |  Planck layout: cosmo-inpaint map.fits --field I_STOKES --mask-field TMASK --mode "
    "realization  |  many maps: cosmo-inpaint maps/*.fits --mask mask.fits --out inpainted/"
)
def inpaint(
    maps: Annotated[
        list[Path],
        typer.Argument(help="HEALPix FITS maps (RING or NESTED; unit from TUNIT, else --unit)."),
    ],
    mask: Annotated[
        Path | None, typer.Option(help="FITS mask, 1 = observed (else UNSEEN/NaN).")
    ] = None,
    mask_field: Annotated[
        str | None,
        typer.Option(
            help="The mask's column (name or index); without --mask, a column of the map's own "
            "file (e.g. TMASK)."
        ),
    ] = None,
    field: Annotated[
        str, typer.Option(help="Column of each map to inpaint (index or name, e.g. I_STOKES).")
    ] = "0",
    unit: Annotated[
        str | None,
        typer.Option(help="The maps' unit when TUNIT is missing or wrong (K_CMB, mK_CMB, uK_CMB)."),
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output file, or folder for many maps.")] = None,
    plots: Annotated[
        Path | None, typer.Option(help="Write Mollweide and spectrum PNGs in this folder.")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="The full sky, for residual maps and spectra (its first column when --field "
            "is a name)."
        ),
    ] = None,
    regrade_mask: Annotated[bool, typer.Option(help="ud_grade a mask of another Nside.")] = False,
    mode: Annotated[
        str, typer.Option(help="mean (lowest error) or realization (right power).")
    ] = "mean",
    prior: Annotated[
        str,
        typer.Option(
            help="auto: the map's spectrum measured from its observed pixels (MASTER); lcdm: "
            "LCDM with --beam-fwhm (default 2 pixels) and --noise-uk-arcmin (default 1)."
        ),
    ] = "auto",
    cl: Annotated[
        Path | None,
        typer.Option(
            help="The sky's C_ell (healpy write_cl FITS or text 'ell C_ell', map unit^2) "
            "instead of measuring it; beamed by --beam-fwhm if given."
        ),
    ] = None,
    beam_fwhm: Annotated[
        float | None, typer.Option(min=0, help="Beam FWHM in arcmin for the given prior.")
    ] = None,
    noise_uk_arcmin: Annotated[
        float | None, typer.Option(min=0, help="White noise in muK arcmin for the given prior.")
    ] = None,
    seed: Seed = 0,
    weights: Annotated[str | None, typer.Option(help=_WEIGHTS_HELP)] = None,
    nside: Annotated[
        int | None,
        typer.Option(
            help="Run the network at this Nside (the rim stays at the map's; default: the map's, "
            "or the nearest bundled one)."
        ),
    ] = None,
    device: Device = "cpu",
    precision: Precision = "fp32",
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
    if prior not in ("auto", "lcdm"):
        raise InputError("--prior", f"must be auto or lcdm, got {prior!r}")
    for option, value in (("--field", field), ("--mask-field", mask_field)):
        if value is not None and value.strip().startswith("-"):
            raise InputError(option, f"must be a column index >= 0 or a name, got {value!r}")
    targets, stems = _map_outputs(maps, out)
    if plots is not None and plots.exists() and not plots.is_dir():
        raise InputError(plots, "is a file, but --plots needs a folder")
    figures = [] if plots is None else [plots / f"{s}_{k}.png" for s in stems for k in _FIGURES]
    inputs = [*maps, *(p for p in (mask, truth, cl) if p is not None)]
    guard_outputs([*targets, *figures], inputs)

    from convsuite.cosmo.data import sky_map_nside
    from convsuite.cosmo.data.units import uk_per_unit

    override = None if unit is None else uk_per_unit(unit, "--unit")
    # every header first (sizes, Nside, cut-short files): a bad file among many stops the run
    # before any output is written
    truth_field = field if field.strip().isdigit() else "0"
    for path in maps:
        sky_map_nside(path, field)
    if truth is not None:
        sky_map_nside(truth, truth_field)
    if mask is not None:
        sky_map_nside(mask, mask_field or 0)
    elif mask_field is not None:
        for path in maps:
            sky_map_nside(path, mask_field)

    import numpy as np
    from rich.console import Console
    from rich.progress import track

    from convsuite.cosmo.data import apply_mask, read_mask, write_sky_map
    from convsuite.cosmo.infer import inpaint_nest, network_nside, pretrained_network

    reference = None
    if truth is not None:
        truth_map, truth_factor = _read_unit(truth, truth_field, override)
        reference = truth_map.replace(values=truth_map.values * np.float32(truth_factor))
    networks, masks = {}, {}
    console = Console(stderr=True, soft_wrap=True)
    jobs = list(zip(maps, targets, stems, strict=True))
    for path, target, stem in track(jobs, description="inpainting", disable=len(maps) < 2):
        raw, factor = _read_unit(path, field, override)
        sky = raw.replace(values=(raw.values.astype(np.float64) * factor).astype(np.float32))
        if mask is not None and sky.nside not in masks:
            masks[sky.nside] = read_mask(mask, sky.nside, regrade_mask, mask_field or 0)
        own_mask = (
            read_mask(path, sky.nside, field=mask_field) if mask is None and mask_field else None
        )
        sky = apply_mask(sky, masks.get(sky.nside) if mask is not None else own_mask)
        if reference is not None and reference.nside != sky.nside:
            raise InputError(truth, f"Nside {reference.nside} but {path} has Nside {sky.nside}")
        run_nside = nside or (sky.nside if weights is not None else network_nside(sky.nside))
        if run_nside != sky.nside and nside is None:
            console.print(
                f"{path}: no bundled checkpoint at Nside {sky.nside}: the network runs at the "
                f"nearest, Nside {run_nside} (the rim and the prior stay at {sky.nside}; --nside "
                "to choose)"
            )
        if run_nside not in networks:
            networks[run_nside] = pretrained_network(run_nside, weights, device, precision)
        map_prior = _prior(sky, factor, prior, cl, beam_fwhm, noise_uk_arcmin)
        filled = inpaint_nest(
            networks[run_nside],
            sky.values,
            sky.observed,
            mode,
            seed,
            map_prior,
            rim_depth=rim_depth,
            nside=run_nside,
            precision=precision,
        )
        # observed pixels exactly as read; the holes back in the map's unit
        values = np.where(sky.observed, raw.values, filled / factor).astype(np.float32)
        written = sky.replace(values=values)
        if not sky.unit and unit is not None:
            written = written.replace(unit=unit)
        write_sky_map(
            written, target, history=f"convsuite cosmo-inpaint {mode} prior {map_prior.source}"
        )
        if plots is not None:
            truth_uk = None if reference is None else reference.values
            _plot(sky, filled, truth_uk, map_prior, plots, stem)
        console.print(
            f"{path} -> {target} (f_sky {sky.f_sky:.3f}, Nside {sky.nside}, unit "
            f"{sky.unit or unit or 'muK (assumed)'}, prior {map_prior.source})"
        )


def _read_unit(path: Path, field: str, override: float | None):
    """One map as read (its unit) and the factor from its unit to muK: ``--unit``'s when given,
    else TUNIT's; a map with neither is muK, unless its observed RMS is implausible for it
    (refused, naming --unit)."""
    from convsuite.cosmo.data import read_sky_map
    from convsuite.cosmo.data.units import check_plausible_uk, uk_per_unit

    sky = read_sky_map(path, field)
    if override is not None:
        return sky, override
    if sky.unit.strip():
        return sky, uk_per_unit(sky.unit, path)
    check_plausible_uk(path, sky.values, sky.observed)
    return sky, 1.0


def _prior(sky, factor: float, prior: str, cl: Path | None, beam, noise):
    """The map's prior: measured (``--prior auto`` and nothing given), or given."""
    from convsuite.cosmo.spectrum import given_prior, measured_prior, read_cl

    if prior == "auto" and cl is None and beam is None and noise is None:
        return measured_prior(sky.values, sky.observed)
    spectrum = None if cl is None else read_cl(cl, sky.nside) * factor**2
    return given_prior(sky.nside, spectrum, beam, noise, "" if cl is None else cl.name)


def _plot(sky, filled, reference, map_prior, folder: Path, stem: str) -> None:
    """Write ``<stem>_maps.png`` and ``<stem>_spectrum.png`` of one inpainted map in ``folder``:
    the spectra of the output (and the truth) beside the prior's (the measured estimate)."""
    from convsuite.core_ops.figures import save_figure
    from convsuite.cosmo.figures import plot_maps, plot_spectra
    from convsuite.cosmo.metrics import power_spectrum

    maps = plot_maps(sky.values, sky.observed, filled, reference, stem)
    save_figure(maps, folder / f"{stem}_maps.png")
    spectra = {"inpainted": filled}
    if reference is not None:
        spectra["truth"] = reference
    band = power_spectrum(reference if reference is not None else filled)
    curves = {f"prior ({map_prior.source})": map_prior.total_cl()}
    save_figure(plot_spectra(spectra, band, curves=curves), folder / f"{stem}_spectrum.png")


@simulate_app.command(
    epilog="Example: cosmo-simulate --n 3 --nside 128 --seed 0 --out sims/  "
    "(then: cosmo-inpaint sims/sky_0000.fits --truth sims/truth_0000.fits --plots figs/)  |  "
    "another sky: --beam-fwhm 60 --n-s 0.94 --amplitude 1.15 --noise-uk-arcmin 5  |  "
    "Planck PR3 layout (K_CMB, NESTED, I/Q/U/TMASK/PMASK, a mask file): --planck-layout"
)
def simulate(
    n: Annotated[int, typer.Option(min=1, help="Number of skies.")] = 1,
    nside: Annotated[int, typer.Option(help="HEALPix Nside.")] = 128,
    seed: Annotated[int, typer.Option(help="First seed (sky i uses seed + i).")] = 0,
    f_sky: Annotated[float, typer.Option(help="Observed fraction of the galactic cut.")] = 0.75,
    beam_fwhm: Annotated[
        float | None, typer.Option(min=0, help="Beam FWHM, arcmin (default: 2 pixels).")
    ] = None,
    noise_uk_arcmin: Annotated[float, typer.Option(min=0, help="White noise, muK arcmin.")] = 1.0,
    amplitude: Annotated[float, typer.Option(min=0, help="Factor on the LCDM C_ell.")] = 1.0,
    n_s: Annotated[float, typer.Option(help="Scalar tilt (LCDM: 0.9649).")] = 0.9649,
    planck_layout: Annotated[
        bool,
        typer.Option(
            help="Also write planck_<i>.fits (K_CMB, NESTED, I_STOKES Q_STOKES U_STOKES TMASK "
            "PMASK) and planck_mask_<i>.fits (GAL060, GAL070, CMB_COMMON)."
        ),
    ] = False,
    out: Annotated[Path, typer.Option(help="Output folder.")] = Path("sims"),
) -> None:
    """Simulate CMB skies with a galactic + point-source mask (FITS, muK, RING)."""
    if out.exists() and not out.is_dir():
        raise InputError(out, "is a file, but --out needs a folder")

    import numpy as np
    from rich.console import Console
    from rich.progress import track

    from convsuite.cosmo.data import SkyMap, SkyPrior, nside_of, simulate_sky, write_sky_map
    from convsuite.cosmo.data.planck import write_planck_layout

    nside_of(12 * nside * nside, "--nside")
    prior = SkyPrior(amplitude, n_s, beam_fwhm, noise_uk_arcmin)
    for i in track(range(n), description="simulating", disable=n < 2):
        sky = simulate_sky(nside, seed + i, f_sky=f_sky, prior=prior)
        cards = [("COORDSYS", "G", "Galactic"), ("SIMSEED", seed + i, "simulate_sky seed")]
        data = np.where(sky.observed, sky.truth, np.float32(-1.6375e30))
        base = SkyMap(data, sky.observed, "RING", "uK_CMB", "TEMPERATURE", cards, "sim")
        write_sky_map(base, out / f"sky_{i:04d}.fits")
        write_sky_map(base.replace(values=sky.truth), out / f"truth_{i:04d}.fits")
        mask = base.replace(values=sky.observed.astype(np.float32), unit="", column="MASK")
        write_sky_map(mask, out / f"mask_{i:04d}.fits")
        if planck_layout:
            write_planck_layout(
                sky, out / f"planck_{i:04d}.fits", out / f"planck_mask_{i:04d}.fits"
            )
    Console(stderr=True, soft_wrap=True).print(
        f"wrote {n} skies (sky, truth, mask{', planck, planck_mask' if planck_layout else ''}) "
        f"to {out} ({prior.describe()})"
    )


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
    "power_ratio",
    "cv_fraction",
    "cv_fraction_per_bin",
    "seconds",
    "cg_residual",
)


@evaluate_app.command(
    epilog="Example: cosmo-evaluate --nside 128 --n 3 --out eval128.json  |  off the training "
    "prior (issue 13's targets: beams 30' and 60', n_s 0.94, +15%, 5 muK'): cosmo-evaluate "
    "--nside 256 --prior-family target --methods skyrecon,skyrecon-cr,prefill,wiener,constrained"
)
def evaluate(
    nside: Annotated[int, typer.Option(help="Nside of the held-out skies.")] = 128,
    n: Annotated[int, typer.Option(min=1, help="Number of held-out skies (seeds 0..n-1).")] = 3,
    methods: Annotated[str, typer.Option(help="Comma-separated methods.")] = (
        "skyrecon,skyrecon-cr,prefill,prefill-cr,diffusive,wiener,constrained"
    ),
    weights: Annotated[str | None, typer.Option(help=_WEIGHTS_HELP)] = None,
    f_sky: Annotated[float, typer.Option(help="Galactic cut's observed fraction.")] = 0.75,
    prior_family: Annotated[
        str,
        typer.Option(
            help="default: LCDM, 2-pixel beam, 1 muK'; target: the held-out priors (beams 30' "
            "and 60', n_s 0.94, amplitude +15%, 5 muK'), each with every seed."
        ),
    ] = "default",
    prior: Annotated[
        str, typer.Option(help="The pipeline's prior: auto (measured from each map) or lcdm.")
    ] = "auto",
    wiener_iterations: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CG budget of the Wiener filter and CR (default: 300 to Nside 64, 1000 above).",
        ),
    ] = None,
    spectrum: Annotated[
        bool,
        typer.Option(
            help="Instead: the measured spectrum's error against the truth's per ell range."
        ),
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write every row as JSON here.")] = None,
) -> None:
    """SkyReconNet vs its pre-fill, diffusive inpainting, Wiener filter and constrained
    realization (the last two given the skies' true prior)."""
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    if out is not None and out.is_dir():
        raise InputError(out, "is a folder, but --out needs a file name")
    if prior_family not in ("default", "target"):
        raise InputError("--prior-family", f"must be default or target, got {prior_family!r}")
    if prior not in ("auto", "lcdm"):
        raise InputError("--prior", f"must be auto or lcdm, got {prior!r}")

    import json

    from rich.console import Console
    from rich.table import Table

    from convsuite.core_ops.io import atomic_write
    from convsuite.cosmo.data import TARGET_PRIORS
    from convsuite.cosmo.evaluation import METHODS, evaluate_methods, spectrum_errors, summarize

    priors = TARGET_PRIORS if prior_family == "target" else None
    if spectrum:
        _print_spectrum_errors(spectrum_errors(nside, range(n), priors), nside, out)
        return
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown or not chosen:
        raise InputError("--methods", f"unknown {unknown}; choose from {', '.join(METHODS)}")
    console = Console(stderr=True, soft_wrap=True)
    rows = evaluate_methods(
        nside,
        range(n),
        chosen,
        weights,
        f_sky,
        console.log,
        wiener_iterations,
        priors,
        prior,
    )
    for row in rows:
        if not row.get("cg_converged", True):
            console.log(
                f"{row['prior']}, seed {row['seed']}: {row['method']}'s CG stopped at "
                f"{row['cg_iterations']} iterations, residual {row['cg_residual']:.1e}: not "
                "converged, the reference may be off the exact Wiener filter (more "
                "--wiener-iterations help at low signal-to-noise only)"
            )
    table = Table(
        title=f"held-out skies: Nside {nside}, f_sky {f_sky} + point sources, n = {n}, "
        f"pipeline prior {prior}"
    )
    for column in ("prior", "method", *_EVALUATION_KEYS):
        table.add_column(column, justify="left" if column in ("prior", "method") else "right")
    for (sky_prior, method), means in summarize(rows).items():
        cells = (f"{means[k]:.4g}" if k in means else "-" for k in _EVALUATION_KEYS)
        table.add_row(sky_prior, method, *cells)
    Console(width=max(Console().width, 160)).print(table)
    if out is not None:
        with atomic_write(out) as handle:
            json.dump(rows, handle, indent=2)


def _print_spectrum_errors(rows: list, nside: int, out: Path | None) -> None:
    """The table of :func:`~convsuite.cosmo.evaluation.spectrum_errors`, means over the seeds."""
    import json

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from convsuite.core_ops.io import atomic_write

    table = Table(
        title=f"measured spectrum: median |estimate / reference - 1| per 10-ell bin, Nside {nside}"
    )
    for column in ("prior", "ells", "vs truth (anafast)", "vs theory"):
        table.add_column(column)
    for key in dict.fromkeys((r["prior"], r["ells"]) for r in rows):
        mine = [r for r in rows if (r["prior"], r["ells"]) == key]
        means = [float(np.mean([r[k] for r in mine])) for k in ("truth", "theory")]
        table.add_row(*key, *(f"{m:.1%}" for m in means))
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
