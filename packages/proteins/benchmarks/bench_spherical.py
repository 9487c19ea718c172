"""SphericalGraphConv (core-ops) at protein sizes: its gather and sparse paths against the dense
reference ``H W_0 + sum_k S_k H W_k`` (same process, same inputs).

Run: ``.venv/bin/python packages/proteins/benchmarks/bench_spherical.py`` (1 thread).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
from convsuite_dev.bench import Comparison, median_seconds, print_table, relative_error

from convsuite.core_ops.layers.spherical import (
    SphericalGraphConv,
    local_frames,
    spherical_adjacency,
    spherical_conv_reference,
)
from convsuite.proteins.data import build_graph, collate, read_structure


def main() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    example = Path(str(resources.files("convsuite.proteins.data") / "examples" / "2cviA.pdb.gz"))
    graph = build_graph(read_structure(example))
    rows = []
    for copies in (1, 8):
        batch = collate([graph] * copies)
        backbone = batch.backbone
        frames = local_frames(backbone[:, 0], backbone[:, 1], backbone[:, 2])
        support = spherical_adjacency(backbone[:, 1], frames, batch.edges, 5)
        n = batch.features.shape[0]
        flops = 2.0 * 25 * n * n * 23 + 2.0 * n * 23 * 20 * 26  # dense S_k H, then the weights
        for method in ("gather", "sparse"):
            layer = SphericalGraphConv(23, 20, order=5, method=method)
            h = torch.randn(n, 23, requires_grad=True)
            dense = support.to_dense().float()

            def ours(layer=layer, h=h):
                return layer(h, support)

            def reference(layer=layer, h=h, dense=dense):
                return spherical_conv_reference(h, dense, layer.weight0, layer.weight, layer.bias)

            error = relative_error(ours(), reference())
            rows.append(
                Comparison(
                    f"{method} fwd N={n}",
                    median_seconds(ours),
                    median_seconds(reference),
                    flops,
                    None,
                    error,
                )
            )
            rows.append(
                Comparison(
                    f"{method} fwd+bwd N={n}",
                    median_seconds(lambda: ours().sum().backward()),
                    median_seconds(lambda: reference().sum().backward()),
                    3 * flops,
                    1.0 if method == "gather" else None,
                )
            )
    print_table("SphericalGraphConv 23 -> 20, L = 5, against the dense reference", rows, "dense")


if __name__ == "__main__":
    main()
