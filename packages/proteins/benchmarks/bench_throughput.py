"""Scoring throughput of the bundled S-GCN in residues per second, feature building included
(read PDB, contacts, SASA, graph, network), against the issue's target of 2,000 residues/s.

Run: ``.venv/bin/python packages/proteins/benchmarks/bench_throughput.py`` (1 thread). The models
are 16 relaxed decoys of the committed example native (83 residues each), written as PDB files.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

import torch
from convsuite_dev.bench import Comparison, median_seconds, print_table

from convsuite.proteins.data import build_graph, collate, read_structure, write_structure
from convsuite.proteins.data.decoys import make_decoys
from convsuite.proteins.infer import ModelQualityAssessor

TARGET = 2000.0  # residues per second


def main() -> None:
    torch.set_num_threads(1)
    example = Path(str(resources.files("convsuite.proteins.data") / "examples" / "2cviA.pdb.gz"))
    native = read_structure(example)
    assessor = ModelQualityAssessor.from_pretrained()
    with tempfile.TemporaryDirectory() as folder:
        files = [
            write_structure(d.protein, Path(folder) / f"decoy{i}.pdb")
            for i, d in enumerate(make_decoys(native, 16, seed=0))
        ]
        residues = 16 * native.num_residues
        proteins = [read_structure(f) for f in files]
        graphs = [build_graph(p) for p in proteins]
        batch = collate(graphs)
        stages = {
            "score files (all stages)": lambda: list(assessor.score_many(files, batch_size=16)),
            "read PDB": lambda: [read_structure(f) for f in files],
            "features + contacts": lambda: [build_graph(p) for p in proteins],
            "network (batch of 16)": lambda: assessor.net(batch),
        }
        rows = []
        for name, stage in stages.items():
            with torch.no_grad():
                seconds = median_seconds(stage, repeats=5)
            rows.append(
                Comparison(
                    f"{name}: {residues / seconds:,.0f} res/s",
                    seconds,
                    residues / TARGET,
                    target=1.0 if name.startswith("score") else None,
                )
            )
    print_table(
        f"S-GCN scoring throughput, {residues} residues (ratio = rate / {TARGET:,.0f} res/s)",
        rows,
        "2000/s",
    )


if __name__ == "__main__":
    main()
