"""``wafer-monitor``: simulate, train, classify and evaluate wafer defect maps from the shell.

Bad input (unreadable or empty maps, coordinates off the wafer, missing model files, an output
that would replace an input) prints one ``error:`` line and exits with 2 (through
:func:`convsuite.core_ops.cli.run`); output files are written atomically. This module imports
neither torch nor pandas: each command imports what it runs, so ``--help`` is quick.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

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

if TYPE_CHECKING:
    from rich.progress import Progress

    from convsuite.semicon.data import WaferMap
    from convsuite.semicon.protocol import HoldoutResult

__all__ = ["app", "main"]

app = typer.Typer(
    help="Wafer defect-map monitor: known failure patterns and novelty detection.",
    no_args_is_help=True,
)
console = Console(stderr=True, soft_wrap=True)

_MAP_SUFFIXES = (".csv", ".npz")
Model = Annotated[
    str | None,
    typer.Option(
        help="Monitor: a bundled name (wafer_monitor_small), a folder written by `train`, or its "
        ".safetensors file; default: the bundled monitor.",
        show_default=False,
    ),
]
Preset = Annotated[
    str,
    typer.Option(
        help="Network preset: auto (die for die-level maps such as WM-811K, else small), base, "
        "small, die or tiny (dense: small, die, tiny)."
    ),
]


def main() -> None:
    """Console script ``wafer-monitor``: runs the app with the shared error handling."""
    run(app)


def _expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a folder stands for its .csv and .npz files, sorted.

    Raises:
        InputError: a path that does not exist, or nothing to read.
    """
    files: list[Path] = []
    for path in paths:
        if path.suffix.lower() == ".pkl" and not path.is_dir():
            raise InputError(
                path,
                "is a pickle (WM-811K?): convert it once with `wafer-monitor convert "
                f"{path} --out DIR --trust-pickle`, then read DIR/train, DIR/test",
            )
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower() in _MAP_SUFFIXES)
        elif path.exists():
            files.append(path)
        else:
            raise InputError(path, "file does not exist")
    if not files:
        raise InputError(", ".join(map(str, paths)) or "maps", "no .csv or .npz wafer maps found")
    return files


def _with_sidecars(files: Sequence[Path]) -> list[Path]:
    """The map files and the JSON sidecars a CSV may have: everything a command reads."""
    return [*files, *(f.with_suffix(".json") for f in files if f.suffix.lower() == ".csv")]


def _folder(path: Path, option: str) -> Path:
    """``path`` as an output folder: refused when it is an existing file."""
    if path.exists() and not path.is_dir():
        raise InputError(path, f"is a file; {option} names a folder")
    return path


def _file(path: Path, option: str) -> Path:
    """``path`` as an output file: refused when it is an existing folder."""
    if path.is_dir():
        raise InputError(path, f"is a folder; {option} names a file")
    return path


def _patterns(text: str) -> tuple[str, ...]:
    from convsuite.semicon.data import PATTERNS

    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(set(names) - set(PATTERNS))
    if unknown:
        raise InputError("--holdout", f"unknown patterns {unknown}; known: {', '.join(PATTERNS)}")
    return names


def _progress() -> Progress:
    """A progress bar on stderr, only on a terminal, and gone once done (errors stay one line)."""
    from rich.progress import Progress

    return Progress(console=console, transient=True, disable=not console.is_terminal)


def _streamed(files: list[Path], progress: Progress) -> Iterator[WaferMap]:
    from convsuite.semicon.data import read_wafer_maps

    task = progress.add_task("classifying", total=len(files))
    for wafer in read_wafer_maps(files):
        yield wafer
        progress.advance(task)


@app.command(
    epilog="Example: wafer-monitor simulate --n 500 --seed 7 --out maps/ (die maps as WM-811K: "
    "--grid 52 --defects-scale 0.05; novel patterns: --novel)"
)
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for one CSV per map.")],
    n: Annotated[int, typer.Option(min=1, help="Number of maps (patterns balanced).")] = 500,
    seed: Seed = 7,
    grid: Annotated[
        int, typer.Option(min=8, help="Grid side in cells (4096: full resolution; ~50: dies).")
    ] = 4096,
    defects_scale: Annotated[
        float,
        typer.Option(min=0.0, help="Multiplies every defect count (0.05 for die-level maps)."),
    ] = 1.0,
    novel: Annotated[
        bool,
        typer.Option(help="Unlabelled maps of patterns no class draws (spiral, reticle, ...)."),
    ] = False,
) -> None:
    """Simulate wafer defect maps, one CSV per map (labelled unless --novel)."""
    from convsuite.semicon.data import SimulationOptions, iter_simulated, write_wafer_csv
    from convsuite.semicon.data.novel import simulate_novel_maps

    _folder(out, "--out")
    options = SimulationOptions(grid=grid, defects_scale=defects_scale)
    maps = simulate_novel_maps(n, seed, options) if novel else iter_simulated(n, seed, options)
    for wafer in maps:
        write_wafer_csv(out / f"{wafer.name}.csv", wafer)
    console.print(f"wrote {n} maps to {out}")


@app.command(
    epilog="Example: wafer-monitor convert LSWMD.pkl --out wm811k/ --trust-pickle "
    "(then: wafer-monitor train wm811k/train --out model/)"
)
def convert(
    pickle_file: Annotated[Path, typer.Argument(help="WM-811K's LSWMD.pkl (a pandas pickle).")],
    out: Annotated[Path, typer.Option(help="Folder for train/, test/ and index.csv.")],
    trust_pickle: Annotated[
        bool,
        typer.Option(
            "--trust-pickle", help="Required: unpickling runs code from the file; trust it."
        ),
    ] = False,
    unlabelled: Annotated[
        bool, typer.Option(help="Also convert the maps without a failureType (unlabelled/).")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after this many maps.", show_default=False)
    ] = None,
) -> None:
    """Turn WM-811K's pickle into .npz die maps, once; every other command reads those.

    Keeps the label, lotName, waferIndex, trianTestLabel (train/ or test/ folder), dieSize and
    the die grid; index.csv lists them. The only command that unpickles: --trust-pickle says the
    file is trusted.
    """
    if not pickle_file.is_file():
        raise InputError(pickle_file, "file does not exist")
    _folder(out, "--out")
    guard_outputs([out / "index.csv"], [pickle_file])
    if not trust_pickle:
        raise InputError(
            pickle_file,
            "unpickling runs code from the file: pass --trust-pickle if you trust it",
        )

    from convsuite.semicon.data.convert import convert_wm811k

    with _progress() as progress:
        task = progress.add_task("converting", total=None)
        counts = convert_wm811k(
            pickle_file,
            out,
            trust_pickle=True,
            labelled_only=not unlabelled,
            limit=limit,
            on_map=lambda _: progress.advance(task),
        )
    written = ", ".join(f"{folder}/ {n}" for folder, n in sorted(counts.items())) or "no maps"
    console.print(f"wrote {sum(counts.values())} maps to {out} ({written}) and {out}/index.csv")


@app.command(epilog="Example: wafer-monitor train maps/ --holdout donut,scratch --out model/")
def train(
    maps: Annotated[Path, typer.Argument(help="Folder of labelled maps (.csv/.npz).")],
    out: Annotated[Path, typer.Option(help="Folder for the monitor's files.")] = Path(
        "wafer-model"
    ),
    name: Annotated[
        str,
        typer.Option(help="Stem of the monitor's files: NAME.safetensors, .json, .novelty.json."),
    ] = "monitor",
    holdout: Annotated[
        str, typer.Option(help="Comma-separated patterns to leave out (novel).")
    ] = "",
    epochs: Annotated[int, typer.Option(min=1, help="Epoch budget.")] = 20,
    val_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of maps that set the threshold.")
    ] = 0.2,
    preset: Preset = "auto",
    dense: Annotated[
        bool, typer.Option(help="Train the binned 64x64 dense baseline instead.")
    ] = False,
    seed: Seed = 0,
    batch_size: BatchSize = 16,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Train the classifier on the known patterns and fit the novelty detector."""
    if Path(name).name != name or not name:
        raise InputError("--name", f"must be a file stem without folders, got {name!r}")
    held_out = _patterns(holdout)
    settings = trainer_settings(accelerator, devices, strategy, num_nodes)
    files = _expand([maps])
    _folder(out, "--out")
    outputs = [out / f"{name}{suffix}" for suffix in (".safetensors", ".json", ".novelty.json")]
    guard_outputs(outputs, _with_sidecars(files))

    from convsuite.core_ops.hub import model_config
    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.semicon.data import read_wafer_maps
    from convsuite.semicon.train import fit_monitor

    labelled = [m for m in read_wafer_maps(files) if m.label not in held_out]
    if any(m.label is None for m in labelled):
        raise InputError(maps, "training needs labelled maps (a `# label:` header)")
    keep_freed_memory()
    config = model_config(
        "wafer_dense" if dense else "wafer_sparse", _auto_preset(preset, _die_level(labelled))
    )
    train_maps, val = _split(labelled, val_fraction, seed)
    console.print(_scale_line(labelled, getattr(config, "grid", getattr(config, "bins", 0))))
    monitor = fit_monitor(
        train_maps,
        val,
        config,
        epochs=epochs,
        out_dir=out,
        name=name,
        batch_size=batch_size,
        seed=seed,
        progress=console.is_terminal,
        recipe=recipe_command(),
        training_data=f"{len(train_maps)} maps of {maps} (validation {len(val)})",
        **settings,
    )
    console.print(f"wrote {out / name}.*: {monitor}")


@app.command(
    epilog="Example: wafer-monitor classify maps/*.csv --model model/ --out results.csv "
    "--precision bf16"
)
def classify(
    maps: Annotated[list[Path], typer.Argument(help="Map files, or folders of them.")],
    model: Model = None,
    out: Annotated[Path, typer.Option(help="CSV with one row per map.")] = Path("results.csv"),
    batch_size: BatchSize = 32,
    device: Device = "cpu",
    precision: Precision = "fp32",
) -> None:
    """Class, probability, novelty score and novelty flag per map, streamed in batches.

    Each row's map_name is the file's stem; maps with the same file name in different folders
    get their folder prefixed.
    """
    files = _expand(maps)
    guard_outputs([_file(out, "--out")], _with_sidecars(files))
    names = output_stems(files)  # map.csv in two folders: a_map, b_map

    from convsuite.core_ops.io import atomic_write
    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.semicon.monitor import Classification, WaferMonitor

    keep_freed_memory()
    monitor = WaferMonitor.from_pretrained(model, device, precision)
    columns = [field.name for field in dataclasses.fields(Classification)]
    count = novel = 0
    with atomic_write(out) as handle, _progress() as progress:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        results = monitor.iter_classify(_streamed(files, progress), batch_size)
        for name, result in zip(names, results, strict=True):
            writer.writerow({**result.to_dict(), "map_name": name})
            count, novel = count + 1, novel + result.is_novel
    console.print(f"wrote {out}: {count} maps, {novel} flagged novel")


@app.command(epilog="Example: wafer-monitor evaluate test-maps/ --model model/ --figures eval/")
def evaluate(
    maps: Annotated[
        Path, typer.Argument(help="Folder of labelled maps; unknown labels count as novel.")
    ],
    model: Model = None,
    figures: Annotated[
        Path, typer.Option(help="Folder for the PNG figures and metrics.json.")
    ] = Path("wafer-evaluation"),
    batch_size: BatchSize = 32,
    device: Device = "cpu",
    precision: Precision = "fp32",
) -> None:
    """Accuracy, macro-F1, AUROC, OSCR (ours and max-softmax); confusion matrix and histogram."""
    files = _expand([maps])
    names = ("confusion_matrix.png", "novelty_scores.png", "metrics.json")
    guard_outputs([_folder(figures, "--figures") / n for n in names], _with_sidecars(files))

    from convsuite.core_ops.figures import save_figure
    from convsuite.core_ops.io import atomic_write
    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.semicon.data import read_wafer_maps
    from convsuite.semicon.figures import confusion_matrix_figure, novelty_histogram_figure
    from convsuite.semicon.monitor import WaferMonitor

    keep_freed_memory()
    monitor = WaferMonitor.from_pretrained(model, device, precision)
    labelled = list(read_wafer_maps(files))
    grid = getattr(monitor.net.config, "grid", getattr(monitor.net.config, "bins", 0))
    scale = _scale_line(labelled, grid)
    console.print(scale)
    results = monitor.classify(labelled, batch_size)
    report = monitor.evaluate(labelled, results=results)
    report["die_level"] = float(_die_level(labelled))
    report["network_grid"] = float(grid)
    truth = [m.label for m in labelled]
    save_figure(confusion_matrix_figure(truth, results, monitor.classes), figures / names[0])
    save_figure(novelty_histogram_figure(truth, results, monitor), figures / names[1])
    with atomic_write(figures / names[2]) as handle:
        json.dump(report, handle, indent=2)
    table = Table(title=f"{maps} ({len(labelled)} maps; {scale})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in report.items():
        table.add_row(metric, f"{value:.4f}")
    Console().print(table)


@app.command(
    epilog="Example: wafer-monitor protocol --holdout donut,scratch,edge-loc --epochs 10 "
    "--seeds 3 --out protocol.json (or on converted WM-811K maps: --maps wm811k/)"
)
def protocol(
    holdout: Annotated[
        str, typer.Option(help="Patterns to hold out in turn; default: all nine.")
    ] = "",
    maps: Annotated[
        Path | None,
        typer.Option(
            help="Folder with train/ and test/ folders of labelled maps (e.g. from `convert`); "
            "default: simulated maps.",
            show_default=False,
        ),
    ] = None,
    n_train: Annotated[int, typer.Option(min=2, help="Simulated training maps (seed 7).")] = 540,
    n_val: Annotated[int, typer.Option(min=1, help="Simulated validation maps (seed 8).")] = 180,
    n_test: Annotated[int, typer.Option(min=1, help="Simulated test maps (seed 2026).")] = 270,
    n_novel: Annotated[
        int, typer.Option(min=0, help="Simulated maps of novel patterns (seed 99; 0: none).")
    ] = 90,
    grid: Annotated[int, typer.Option(min=8, help="Grid side in cells.")] = 4096,
    preset: Annotated[
        str,
        typer.Option(
            help="Preset of both networks: auto (die for die maps, else small), small, die or tiny."
        ),
    ] = "auto",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of every training run.")] = 10,
    seeds: Annotated[int, typer.Option(min=1, help="Repeat every run with seeds 0..N-1.")] = 1,
    batch_size: BatchSize = 16,
    out: Annotated[Path | None, typer.Option(help="Write every run's figures here (JSON).")] = None,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Hold each pattern out in turn: sparse net vs binned dense baseline, novelty vs max-softmax."""
    settings = trainer_settings(accelerator, devices, strategy, num_nodes)
    if out is not None:
        _file(out, "--out")
        inputs = [] if maps is None else _with_sidecars(_expand([maps / "train", maps / "test"]))
        guard_outputs([out], inputs)

    import numpy as np

    from convsuite.core_ops.hub import model_config
    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.semicon.data import PATTERNS, SimulationOptions, simulate_wafer_maps
    from convsuite.semicon.data.novel import simulate_novel_maps
    from convsuite.semicon.protocol import holdout_protocol, summarize

    keep_freed_memory()
    if maps is None:
        options = SimulationOptions(grid=grid)
        train_maps = simulate_wafer_maps(n_train, 7, options)
        val_maps = simulate_wafer_maps(n_val, 8, options)
        test_maps = simulate_wafer_maps(n_test, 2026, options)
        source = f"simulated, grid {grid}"
    else:
        train_maps, val_maps = _split(_labelled(maps / "train"), 0.2, 0)
        test_maps = _labelled(maps / "test")
        source = f"{maps}"
    die_level = _die_level(train_maps)
    if n_novel:
        side = int(np.median([max(m.grid_shape) for m in train_maps]))
        scale = 0.05 if die_level else 1.0
        novel_maps = simulate_novel_maps(n_novel, 99, SimulationOptions(side, defects_scale=scale))
    else:
        novel_maps = []
    preset = _auto_preset(preset, die_level)
    held_out = _patterns(holdout) or tuple(
        p for p in PATTERNS if any(m.label == p for m in train_maps)
    )
    console.print(_scale_line(train_maps, model_config("wafer_sparse", preset).grid))
    results = holdout_protocol(
        train_maps,
        val_maps,
        test_maps,
        patterns=held_out,
        sparse_config=model_config("wafer_sparse", preset),
        dense_config=model_config("wafer_dense", preset),
        epochs=epochs,
        seeds=range(seeds),
        novel_maps=novel_maps,
        batch_size=batch_size,
        on_result=None if out is None else lambda so_far: _save_results(out, so_far),
        logger=False,
        **settings,
    )
    keys = ("accuracy", "auroc", "oscr", "false_alarm_rate", "msp_auroc")
    keys += ("novel_set_auroc", "novel_set_detection_at_5") if novel_maps else ()
    table = Table(title=f"open-set protocol, {len(test_maps)} test maps ({source}), {preset}")
    for column in ("method", "novel", "seed", *keys):
        table.add_column(column, justify="left" if column in ("method", "novel") else "right")
    for result in results:
        values = [f"{result.metrics.get(k, float('nan')):.3f}" for k in keys]
        table.add_row(result.method, result.novel_pattern, str(result.seed), *values)
    for method, means in summarize(results).items():
        cells = [f"{means.get(k, float('nan')):.3f}±{means.get(k + '_sd', 0.0):.3f}" for k in keys]
        table.add_row(method, "mean", "all", *cells)
    Console().print(table)


def _save_results(out: Path, results: Sequence[HoldoutResult]) -> None:
    """Every run's figures so far as JSON (rewritten atomically after each run)."""
    from convsuite.core_ops.io import atomic_write

    with atomic_write(out) as handle:
        json.dump([dataclasses.asdict(r) for r in results], handle, indent=2)


def _labelled(folder: Path) -> list[WaferMap]:
    from convsuite.semicon.data import read_wafer_maps

    maps = list(read_wafer_maps(_expand([folder])))
    unlabelled = next((m for m in maps if m.label is None), None)
    if unlabelled is not None:
        raise InputError(folder / unlabelled.name, "needs a label (training and evaluation)")
    return maps


def _split(
    maps: Sequence[WaferMap], val_fraction: float, seed: int
) -> tuple[list[WaferMap], list[WaferMap]]:
    """(train, validation): a seeded random ``val_fraction`` of the maps (at least one)."""
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(maps))
    n_val = max(1, round(val_fraction * len(maps)))
    return [maps[i] for i in order[n_val:]], [maps[i] for i in order[:n_val]]


def _die_level(maps: Sequence[WaferMap]) -> bool:
    """Whether the maps are die maps (median pitch >= 1 mm, as WM-811K), not defect lists."""
    import numpy as np

    from convsuite.semicon.train import DIE_PITCH_MM

    return bool(maps) and float(np.median([m.pitch_mm for m in maps])) >= DIE_PITCH_MM


def _auto_preset(preset: str, die_level: bool) -> str:
    """``auto`` -> ``die`` for die maps, ``small`` otherwise; other names as given."""
    if preset == "auto":
        return "die" if die_level else "small"
    return preset


def _scale_line(maps: Sequence[WaferMap], grid: int) -> str:
    """What scale the maps are and what grid the network reads them on."""
    sides = sorted(max(m.grid_shape) for m in maps) or [0]
    kind = "die-level maps" if _die_level(maps) else "full-resolution maps"
    span = f"{sides[0]}" if sides[0] == sides[-1] else f"{sides[0]}-{sides[-1]}"
    return f"input: {kind} ({span} cells across), resampled to the network's {grid} grid"
