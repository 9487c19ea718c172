"""``wafer-monitor``: simulate, train, classify and evaluate wafer defect maps from the shell.

Bad input (unreadable or empty maps, coordinates off the wafer, missing model files) prints one line
and exits with 2; output files are written atomically.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from convsuite.core_ops.cli import input_error_exit
from convsuite.core_ops.io import InputError, atomic_write
from convsuite.core_ops.runtime import keep_freed_memory
from convsuite.semicon.data import (
    PATTERNS,
    SimulationOptions,
    WaferMap,
    read_wafer_maps,
    simulate_wafer_maps,
    write_simulated,
)
from convsuite.semicon.dense_baseline import dense_preset
from convsuite.semicon.figures import save_confusion_matrix, save_novelty_histogram
from convsuite.semicon.model import preset as sparse_preset
from convsuite.semicon.monitor import WaferMonitor

app = typer.Typer(
    help="Wafer defect-map monitor: known failure patterns and novelty detection.",
    no_args_is_help=True,
)
console = Console(stderr=True)


def _expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given; a folder stands for its .csv and .npz files, sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".csv", ".npz"))
        else:
            files.append(path)
    if not files:
        raise InputError(", ".join(map(str, paths)) or "maps", "no .csv or .npz wafer maps found")
    return files


def _patterns(text: str) -> tuple[str, ...]:
    names = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = sorted(set(names) - set(PATTERNS))
    if unknown:
        raise InputError("--holdout", f"unknown patterns {unknown}; known: {', '.join(PATTERNS)}")
    return names


@app.command(epilog="Example: wafer-monitor simulate --n 500 --seed 7 --out maps/")
def simulate(
    out: Path = typer.Option(..., help="Folder for one CSV per map."),
    n: int = typer.Option(500, help="Number of maps (patterns balanced)."),
    seed: int = typer.Option(7, help="Seed: same seed, same maps."),
    grid: int = typer.Option(4096, help="Grid side in cells (full resolution)."),
) -> None:
    """Simulate full-resolution wafer defect maps, one labelled CSV per map."""
    maps = simulate_wafer_maps(n, seed, SimulationOptions(grid=grid))
    write_simulated(out, maps)
    console.print(f"wrote {n} maps to {out}")


@app.command(epilog="Example: wafer-monitor train maps/ --holdout donut,scratch --out model/")
def train(
    maps: Path = typer.Argument(..., help="Folder of labelled maps (.csv/.npz)."),
    out: Path = typer.Option(Path("wafer-model"), help="Folder for the monitor's files."),
    holdout: str = typer.Option("", help="Comma-separated patterns to leave out (novel)."),
    epochs: int = typer.Option(20, help="Epoch budget."),
    val_fraction: float = typer.Option(0.2, help="Share of maps that set the threshold."),
    preset: str = typer.Option("small", help="Network preset: base, small or tiny."),
    dense: bool = typer.Option(False, help="Train the binned 64x64 dense baseline instead."),
    seed: int = typer.Option(0, help="Seed of split, initialisation and mixture."),
) -> None:
    """Train the classifier on the known patterns and fit the novelty detector."""
    keep_freed_memory()
    try:
        held_out = _patterns(holdout)
        labelled = [m for m in read_wafer_maps(_expand([maps])) if m.label not in held_out]
        if any(m.label is None for m in labelled):
            raise InputError(maps, "training needs labelled maps (a `# label:` header)")
    except InputError as error:
        raise input_error_exit(error) from None
    order = np.random.default_rng(seed).permutation(len(labelled))
    n_val = max(1, round(val_fraction * len(labelled)))
    val = [labelled[i] for i in order[:n_val]]
    train_maps = [labelled[i] for i in order[n_val:]]
    try:
        config = dense_preset(preset) if dense else sparse_preset(preset)
    except ValueError as error:
        raise input_error_exit(InputError("--preset", str(error))) from None
    recipe = (
        f"wafer-monitor train {maps} --holdout '{holdout}' --epochs {epochs} --seed {seed} "
        f"--preset {preset}"
    )
    monitor = WaferMonitor.fit(
        train_maps,
        val,
        config,
        epochs=epochs,
        out_dir=out,
        seed=seed,
        progress=True,
        recipe=recipe + (" --dense" if dense else ""),
        training_data=f"{len(train_maps)} maps of {maps} (validation {len(val)})",
    )
    console.print(f"wrote {out}: {monitor}")


def _streamed(files: list[Path], progress: Progress) -> Iterator[WaferMap]:
    task = progress.add_task("classifying", total=len(files))
    for wafer in read_wafer_maps(files):
        yield wafer
        progress.advance(task)


@app.command(epilog="Example: wafer-monitor classify maps/*.csv --model model/ --out results.csv")
def classify(
    maps: list[Path] = typer.Argument(..., help="Map files, or folders of them."),
    model: Path | None = typer.Option(None, help="Monitor folder; default: bundled."),
    out: Path = typer.Option(Path("results.csv"), help="One row per map."),
    batch_size: int = typer.Option(32, help="Maps per forward pass."),
) -> None:
    """Class, probability, novelty score and novelty flag per map, streamed in batches."""
    keep_freed_memory()
    try:
        monitor = WaferMonitor.load(model)
        files = _expand(maps)
        with Progress(console=console) as progress:
            rows = [
                r.to_dict() for r in monitor.iter_classify(_streamed(files, progress), batch_size)
            ]
    except InputError as error:
        raise input_error_exit(error) from None
    with atomic_write(out) as handle:
        pd.DataFrame(rows).to_csv(handle, index=False)
    novel = sum(row["is_novel"] for row in rows)
    console.print(f"wrote {out}: {len(rows)} maps, {novel} flagged novel")


@app.command(epilog="Example: wafer-monitor evaluate test-maps/ --model model/ --figures eval/")
def evaluate(
    maps: Path = typer.Argument(
        ..., help="Folder of labelled maps; unknown labels count as novel."
    ),
    model: Path | None = typer.Option(None, help="Monitor folder; default: bundled."),
    figures: Path = typer.Option(Path("wafer-evaluation"), help="Folder for the PNG figures."),
    batch_size: int = typer.Option(32, help="Maps per forward pass."),
) -> None:
    """Accuracy, macro-F1, AUROC, OSCR (ours and max-softmax); confusion matrix and histogram."""
    keep_freed_memory()
    try:
        monitor = WaferMonitor.load(model)
        labelled = list(read_wafer_maps(_expand([maps])))
        report = monitor.evaluate(labelled, batch_size)
        results = monitor.classify(labelled, batch_size)
    except InputError as error:
        raise input_error_exit(error) from None
    truth = [m.label for m in labelled]
    save_confusion_matrix(figures / "confusion_matrix.png", truth, results, monitor.classes)
    save_novelty_histogram(figures / "novelty_scores.png", truth, results, monitor)
    with atomic_write(figures / "metrics.json") as handle:
        json.dump(report, handle, indent=2)
    table = Table(title=f"{maps} ({len(labelled)} maps)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.items():
        table.add_row(name, f"{value:.4f}")
    Console().print(table)


@app.command(
    epilog="Example: wafer-monitor protocol --holdout donut,scratch,edge-loc --epochs 10 "
    "--out protocol.json"
)
def protocol(
    holdout: str = typer.Option("", help="Patterns to hold out in turn; default: all nine."),
    n_train: int = typer.Option(540, help="Simulated training maps (seed 7)."),
    n_val: int = typer.Option(180, help="Simulated validation maps (seed 8)."),
    n_test: int = typer.Option(270, help="Simulated test maps (seed 2026)."),
    grid: int = typer.Option(4096, help="Grid side in cells."),
    preset: str = typer.Option("small", help="Preset of both networks: small or tiny."),
    epochs: int = typer.Option(10, help="Epochs of every training run."),
    out: Path | None = typer.Option(None, help="Write every run's figures here (JSON)."),
) -> None:
    """Hold each pattern out in turn: sparse net vs binned dense baseline, GMM vs max-softmax."""
    from convsuite.semicon.protocol import holdout_protocol, summarize

    keep_freed_memory()
    try:
        patterns = _patterns(holdout) or PATTERNS
    except InputError as error:
        raise input_error_exit(error) from None
    try:
        sparse_config, dense_config = sparse_preset(preset), dense_preset(preset)
    except ValueError as error:
        raise input_error_exit(InputError("--preset", str(error))) from None
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
