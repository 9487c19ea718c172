"""``protein-qa``: score structure models, make decoy sets, train and evaluate quality networks.

The console script runs its typer app through :func:`convsuite.core_ops.cli.run`: bad input (not
a structure, no protein residues, no complete backbone, an output that would replace an input)
prints one line naming the file and exits with status 2, with no output written (every structure
is read before the first output is, and outputs are written to a temporary name, then renamed).
This module imports neither numpy nor torch: each command imports its pipeline when it runs.
"""

from __future__ import annotations

import json
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
    torch_device,
    trainer_settings,
)
from convsuite.core_ops.errors import InputError

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Protein model quality assessment with S-GCN (spherical graph convolutions).",
)

_WEIGHTS_HELP = (
    "Bundled weights (sgcn_decoys, gcn_decoys) or a .safetensors file from protein-qa train; "
    "default: the bundled S-GCN."
)


@app.command(
    epilog="Example: protein-qa score model1.pdb model2.cif --out scores.csv "
    "--per-residue per_residue/ --write-bfactor scored/"
)
def score(
    models: Annotated[list[Path], typer.Argument(help="PDB or mmCIF files (.gz too).")],
    out: Annotated[Path, typer.Option(help="CSV: model,global_score,n_residues.")],
    per_residue: Annotated[
        Path | None,
        typer.Option(help="Folder for <model stem>.csv: chain,resnum,resname,score."),
    ] = None,
    write_bfactor: Annotated[
        Path | None,
        typer.Option(help="Folder for each structure with its residue scores as B-factors."),
    ] = None,
    weights: Annotated[str | None, typer.Option(help=_WEIGHTS_HELP)] = None,
    contacts: Annotated[
        str, typer.Option(help="Residue contacts: atoms (pure Python) or voronota (binary).")
    ] = "atoms",
    device: Device = "cpu",
    batch_size: BatchSize = 8,
) -> None:
    """Score structure models: a global score and per-residue scores in [0, 1] (1 = correct)."""
    import csv
    import io

    from convsuite.core_ops.io import atomic_write
    from convsuite.proteins.data.structure import read_structure, write_bfactors
    from convsuite.proteins.infer import ModelQualityAssessor

    if contacts not in ("atoms", "voronota"):
        raise InputError("--contacts", f"must be atoms or voronota, got {contacts!r}")
    stems = output_stems(models)
    residue_files = [per_residue / f"{s}.csv" for s in stems] if per_residue else []
    suffix = [".cif" if ".cif" in m.name.lower() else ".pdb" for m in models]
    bfactor_files = (
        [write_bfactor / f"{s}{x}" for s, x in zip(stems, suffix, strict=True)]
        if write_bfactor
        else []
    )
    guard_outputs([out, *residue_files, *bfactor_files], models)
    proteins = [read_structure(m) for m in models]  # every input checked before any output
    assessor = ModelQualityAssessor.from_pretrained(weights, torch_device(device), contacts)  # type: ignore[arg-type]
    results = list(assessor.score_many(proteins, batch_size))
    for result, path in zip(results, residue_files, strict=False):
        with atomic_write(path) as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["chain", "resnum", "resname", "score"])
            writer.writerows((c, n, r, f"{s:.4f}") for c, n, r, s in result.rows())
    for result, path in zip(results, bfactor_files, strict=False):
        write_bfactors(result.protein, result.scores * 100.0, path)
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["model", "global_score", "n_residues"])
    for model, result in zip(models, results, strict=True):
        writer.writerow([str(model), f"{result.global_score:.4f}", result.num_residues])
    with atomic_write(out) as handle:
        handle.write(table.getvalue())
    typer.echo(table.getvalue(), nl=False)


@app.command(
    epilog="Example: protein-qa decoys --split train --per-native 30 --include-natives "
    "--out train.npz"
)
def decoys(
    out: Annotated[Path, typer.Option(help="The decoy set (.npz) to write.")],
    natives: Annotated[
        list[Path] | None, typer.Argument(help="Native PDB/mmCIF files (or use --split).")
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="train, val or test: the natives listed in natives.txt (mdanalysistests)."
        ),
    ] = None,
    per_native: Annotated[int, typer.Option(min=1, help="Decoys per native.")] = 20,
    include_natives: Annotated[bool, typer.Option(help="Add the natives themselves.")] = False,
    write_pdb: Annotated[
        Path | None, typer.Option(help="Also write the decoys as PDB files into this folder.")
    ] = None,
    seed: Seed = 0,
) -> None:
    """Make relaxed decoys of native structures and their per-residue lDDT (a training set)."""
    from convsuite.proteins.data.decoyset import build_decoy_set, save_decoy_set
    from convsuite.proteins.data.natives import list_natives, mdanalysistests_data

    files = list(natives or [])
    if split is not None:
        rows = list_natives(split)
        if not rows:
            raise InputError("--split", f"no natives in split {split!r} (train, val, test)")
        folder = mdanalysistests_data()
        files += [folder / row.file for row in rows]
    if not files:
        raise InputError("decoys", "give native structure files or --split")
    guard_outputs([out], files)
    made = build_decoy_set(files, per_native, seed, include_natives, write_pdb=write_pdb)
    save_decoy_set(made, out)
    typer.echo(f"{out}: {len(made)} models of {len(set(made.natives))} natives")


@app.command(
    epilog="Example: protein-qa train --train train.npz --val val.npz --model sgcn --out runs/sgcn"
)
def train(
    train_set: Annotated[Path, typer.Option("--train", help="Decoy set from protein-qa decoys.")],
    val_set: Annotated[Path, typer.Option("--val", help="Validation decoy set.")],
    out: Annotated[Path, typer.Option(help="Folder for the weights, card and Lightning logs.")],
    model: Annotated[str, typer.Option(help="sgcn (S-GCN) or protein_gcn (baseline).")] = "sgcn",
    preset: Annotated[str, typer.Option(help="paper, sgcn_r (S-GCN_r) or tiny.")] = "paper",
    name: Annotated[
        str | None, typer.Option(help="Weights file name; default the model's.")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 20,
    lr: Annotated[float, typer.Option(help="Adam learning rate (paper: 1e-3).")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="L2 regularization (paper: 3e-3).")] = 3e-3,
    batch_size: BatchSize = 8,
    seed: Seed = 0,
    accelerator: Accelerator = "cpu",
    devices: Devices = "1",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Train S-GCN or the GCN baseline on decoy sets (MSE on per-residue lDDT, Adam, L2)."""
    import sys

    from convsuite.core_ops.hub import create_model
    from convsuite.proteins.data.decoyset import load_decoy_set
    from convsuite.proteins.train import fit

    settings = trainer_settings(accelerator, devices, strategy, num_nodes)
    train_data, val_data = load_decoy_set(train_set), load_decoy_set(val_set)
    net = create_model(model, preset=preset)
    card = net.model_card(
        recipe=recipe_command(),
        training_data=(
            f"{train_set.name}: {len(train_data)} models of {len(set(train_data.natives))} natives "
            "(relaxed decoys, per-residue lDDT targets)"
        ),
        intended_use=(
            "Per-residue and global quality of single-chain protein models close to the decoys it "
            "was trained on (hinge motions, register shifts, loop moves, coordinate noise of "
            "mdanalysistests natives); not validated on CASP server models or complexes."
        ),
        inputs={"features": 23, "contacts": "heavy atoms within 5 A"},
        outputs={"residue_score": "predicted lDDT in [0, 1]", "global_score": "mean"},
    )
    path, metrics = fit(
        net,
        train_data,
        val_data,
        out,
        card,
        name or model,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        progress=sys.stderr.isatty(),
        **settings,
    )
    typer.echo(f"{path}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(metrics.items())))


@app.command(
    epilog="Example: protein-qa evaluate --data test.npz --weights sgcn_decoys "
    "--weights gcn_decoys --structures test_pdb/ --out evaluation.json --figures figures/"
)
def evaluate(
    data: Annotated[Path, typer.Option(help="Decoy set from protein-qa decoys (held out).")],
    out: Annotated[Path, typer.Option(help="JSON with every metric of every method.")],
    weights: Annotated[
        list[str] | None, typer.Option(help=_WEIGHTS_HELP + " Repeat to compare.")
    ] = None,
    figures: Annotated[Path | None, typer.Option(help="Folder for the figures (PNG).")] = None,
    structures: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the decoys' PDB files (protein-qa decoys --write-pdb): adds VoroMQA "
            "when voronota-voromqa is on PATH."
        ),
    ] = None,
    device: Device = "cpu",
) -> None:
    """Per-target Pearson/Spearman of residue scores, global correlation, z-score, top-1 loss."""
    from convsuite.core_ops.figures import save_figure
    from convsuite.core_ops.io import atomic_write
    from convsuite.proteins.data.decoyset import load_decoy_set
    from convsuite.proteins.evaluate import evaluate_methods, format_table
    from convsuite.proteins.figures import plot_correlations

    guard_outputs([out], [data])
    decoy_set = load_decoy_set(data)
    results, predictions = evaluate_methods(
        decoy_set, weights or ["sgcn_decoys", "gcn_decoys"], torch_device(device), structures
    )
    if figures is not None:
        save_figure(
            plot_correlations(decoy_set, predictions), figures / f"{data.stem}_correlations.png"
        )
    with atomic_write(out) as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
    typer.echo(format_table(results))


def main() -> None:
    """Console script ``protein-qa``."""
    run(app)
