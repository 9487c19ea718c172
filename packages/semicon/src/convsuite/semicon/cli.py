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
    str, typer.Option(help="Network preset: base, small or tiny (dense: small, tiny).")
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


@app.command(epilog="Example: wafer-monitor simulate --n 500 --seed 7 --out maps/")
def simulate(
    out: Annotated[Path, typer.Option(help="Folder for one CSV per map.")],
    n: Annotated[int, typer.Option(min=1, help="Number of maps (patterns balanced).")] = 500,
    seed: Seed = 7,
    grid: Annotated[int, typer.Option(min=8, help="Grid side in cells (full resolution).")] = 4096,
) -> None:
    """Simulate full-resolution wafer defect maps, one labelled CSV per map."""
    from convsuite.semicon.data import SimulationOptions, iter_simulated, write_wafer_csv

    _folder(out, "--out")
    for wafer in iter_simulated(n, seed, SimulationOptions(grid=grid)):
        write_wafer_csv(out / f"{wafer.name}.csv", wafer)
    console.print(f"wrote {n} maps to {out}")


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
    preset: Preset = "small",
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

    import numpy as np

    from convsuite.core_ops.hub import model_config
    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.semicon.data import read_wafer_maps
    from convsuite.semicon.train import fit_monitor

    config = model_config("wafer_dense" if dense else "wafer_sparse", preset)
    labelled = [m for m in read_wafer_maps(files) if m.label not in held_out]
    if any(m.label is None for m in labelled):
        raise InputError(maps, "training needs labelled maps (a `# label:` header)")
    keep_freed_memory()
    order = np.random.default_rng(seed).permutation(len(labelled))
    n_val = max(1, round(val_fraction * len(labelled)))
    val = [labelled[i] for i in order[:n_val]]
    train_maps = [labelled[i] for i in order[n_val:]]
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


@app.command(epilog="Example: wafer-monitor classify maps/*.csv --model model/ --out results.csv")
def classify(
    maps: Annotated[list[Path], typer.Argument(help="Map files, or folders of them.")],
    model: Model = None,
    out: Annotated[Path, typer.Option(help="CSV with one row per map.")] = Path("results.csv"),
    batch_size: BatchSize = 32,
    device: Device = "cpu",
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
    monitor = WaferMonitor.from_pretrained(model, device)
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
    monitor = WaferMonitor.from_pretrained(model, device)
    labelled = list(read_wafer_maps(files))
    results = monitor.classify(labelled, batch_size)
    report = monitor.evaluate(labelled, results=results)
    truth = [m.label for m in labelled]
    save_figure(confusion_matrix_figure(truth, results, monitor.classes), figures / names[0])
    save_figure(novelty_histogram_figure(truth, results, monitor), figures / names[1])
    with atomic_write(figures / names[2]) as handle:
        json.dump(report, handle, indent=2)
    table = Table(title=f"{maps} ({len(labelled)} maps)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for metric, value in report.items():
        table.add_row(metric, f"{value:.4f}")
    Console().print(table)


@app.command(
    epilog="Example: wafer-monitor protocol --holdout donut,scratch,edge-loc --epochs 10 "
    "--out protocol.json"
)
def protocol(
    holdout: Annotated[
        str, typer.Option(help="Patterns to hold out in turn; default: all nine.")
    ] = "",
    n_train: Annotated[int, typer.Option(min=2, help="Simulated training maps (seed 7).")] = 540,
    n_val: Annotated[int, typer.Option(min=1, help="Simulated validation maps (seed 8).")] = 180,
    n_test: Annotated[int, typer.Option(min=1, help="Simulated test maps (seed 2026).")] = 270,
    grid: Annotated[int, typer.Option(min=8, help="Grid side in cells.")] = 4096,
    preset: Annotated[str, typer.Option(help="Preset of both networks: small or tiny.")] = "small",
    epochs: Annotated[int, typer.Option(min=1, help="Epochs of every training run.")] = 10,
    out: Annotated[Path | None, typer.Option(help="Write every run's figures here (JSON).")] = None,
    accelerator: Accelerator = "auto",
    devices: Devices = "auto",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Hold each pattern out in turn: sparse net vs binned dense baseline, GMM vs max-softmax."""
    settings = trainer_settings(accelerator, devices, strategy, num_nodes)
    if out is not None:
        _file(out, "--out")

    from convsuite.core_ops.hub import model_config
    from convsuite.core_ops.io import atomic_write
    from convsuite.core_ops.runtime import keep_freed_memory
    from convsuite.semicon.data import PATTERNS, SimulationOptions, simulate_wafer_maps
    from convsuite.semicon.protocol import holdout_protocol, summarize

    patterns = _patterns(holdout) or PATTERNS
    sparse_config = model_config("wafer_sparse", preset)
    dense_config = model_config("wafer_dense", preset)
    keep_freed_memory()
    options = SimulationOptions(grid=grid)
    results = holdout_protocol(
        simulate_wafer_maps(n_train, 7, options),
        simulate_wafer_maps(n_val, 8, options),
        simulate_wafer_maps(n_test, 2026, options),
        patterns=patterns,
        sparse_config=sparse_config,
        dense_config=dense_config,
        epochs=epochs,
        logger=False,
        **settings,
    )
    keys = ("accuracy", "macro_f1", "auroc", "oscr", "false_alarm_rate", "msp_auroc")
    table = Table(title=f"open-set protocol, {n_test} test maps, grid {grid}")
    for column in ("method", "novel", *keys):
        table.add_column(column, justify="left" if column in ("method", "novel") else "right")
    for result in results:
        values = [f"{result.metrics.get(k, float('nan')):.3f}" for k in keys]
        table.add_row(result.method, result.novel_pattern, *values)
    for method, means in summarize(results).items():
        table.add_row(method, "mean", *(f"{means.get(k, float('nan')):.3f}" for k in keys))
    Console().print(table)
    if out is not None:
        with atomic_write(out) as handle:
            json.dump([dataclasses.asdict(r) for r in results], handle, indent=2)
