"""Submanifold sparse convolution: our layers against spconv's CPU path and a dense network.

Input: wafer-like defect maps, batch 2, on a 4096 x 4096 grid (Loc/Center clusters, Scratch arcs,
an Edge-Ring arc and Random dies, as the WM-811K pattern families), 2k / 20k / 100k active sites
per wafer. Network: SubM 3x3 1->16, SubM 3x3 16->16, SparseConv k2 s2 16->32, SubM 3x3 32->32.
Every timed call starts from a fresh input, so both sides build their rulebooks inside the timing.

Baselines, same process, same weights, 2 threads:
* spconv 2.x CPU (``SubMConv2d``/``SparseConv2d``; SubM layers at one resolution share an
  ``indice_key``, as ours share a rulebook). Forward only: spconv's CPU backward calls
  ``torch.cuda`` and raises. Targets (issue 18): spconv / ours >= 1.3 at 2k and 20k sites, >= 1
  at 100k.
* For forward+backward, plain autograd on the same rulebooks (per tap ``feats[in] @ W`` then
  ``index_add_``): what the custom autograd function and CSR scatter buy. Report only.
* The same network as dense ``F.conv2d`` (SubM -> padding 1, inactive sites zeroed after each
  layer, which makes it exactly equal). On the full grid it would need about 4 GB of activations and
  seconds per pass, so it runs on the central 1024 x 1024 crop of the 2k-site wafers (ours on the
  sites inside that crop); our fixed per-call costs make this understate the full-grid ratio.
  Target: dense / ours >= 50.

Rows are medians of interleaved runs (ours, baseline, ours, ...), so load drift hits both sides alike.
The OpenMP wait policy is left as the caller has it and printed ("default" when unset). These
benchmarks used to set ``OMP_WAIT_POLICY=PASSIVE``: that slows torch's own baseline (about 3x on
1-D depthwise k = 31 forward+backward: 134 ms against 42-47 ms under libgomp's default, idle
machine) and so inflated our ratios; our side is as fast or faster under the default, which is
what users get.

    PYTHONPATH=shared python packages/core-ops/benchmarks/bench_sparse.py [--quick] [--threads N]
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from convsuite_dev.bench import Comparison, paired_medians, relative_error
from peak import print_table_with_peak as print_table
from torch import Tensor, nn

from convsuite.core_ops.layers import (
    SparseConv2d,
    SparseTensor,
    SubmanifoldConv2d,
    downsample_rulebook,
    submanifold_rulebook,
    weight_to_spconv,
    weight_to_torch,
)
from convsuite.core_ops.runtime import keep_freed_memory

QUICK = "--quick" in sys.argv
THREADS = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 2
torch.set_num_threads(THREADS)
print(f"glibc keeps freed memory: {keep_freed_memory()}")
print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}")
logging.disable(logging.WARNING)
import spconv.pytorch as spconv  # noqa: E402  (imported after logging.disable)
from spconv import __version__ as SPCONV_VERSION  # noqa: E402

GRID, BATCH, CROP = 4096, 2, 1024
SITES = (2_000, 20_000) if QUICK else (2_000, 20_000, 100_000)
# Interleaved repeats per case: small cases are cheap and noisier, so they get more.
REPEATS = {2_000: 15, 20_000: 7, 100_000: 5}


def wafer_sites(n: int, seed: int, size: int = GRID) -> Tensor:
    """(n, 2) int64 distinct (y, x) defect sites on a wafer disk of radius 0.48 * size, raster order.

    Half the draws from 4-8 Gaussian clusters, a quarter along 2-4 thin curved scratches, an eighth
    on an edge-ring arc, the rest uniform over the disk.
    """
    g = torch.Generator().manual_seed(seed)
    centre, radius = (size - 1) / 2, 0.48 * size

    def uniform(*shape: int) -> Tensor:
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    def normal(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    keys = torch.empty(0, dtype=torch.int64)
    draws = 2 * n
    while keys.numel() < n:
        clusters = 4 + int(uniform(1) * 5)
        where = centre + (uniform(clusters, 2) * 2 - 1) * radius * 0.6
        spread = 4 + uniform(clusters, 1) * math.sqrt(n) * 0.2
        pick = torch.randint(0, clusters, (draws // 2,), generator=g)
        blobs = where[pick] + normal(draws // 2, 2) * spread[pick]
        scratches = 2 + int(uniform(1) * 3)
        t, pick = uniform(draws // 4), torch.randint(0, scratches, (draws // 4,), generator=g)
        start = centre + (uniform(scratches, 2) * 2 - 1) * radius * 0.5
        angle = uniform(scratches)[pick] * math.pi + (uniform(scratches)[pick] - 0.5) * 2 * t
        length = radius * (0.3 + 0.5 * uniform(scratches))[pick] * t
        lines = start[pick] + length[:, None] * torch.stack([angle.cos(), angle.sin()], 1)
        lines += normal(draws // 4, 2) * 0.8
        arc = uniform(draws // 8) * math.pi * 0.8 + uniform(1) * 2 * math.pi
        ring_radius = radius * (0.97 - 0.02 * uniform(draws // 8))
        ring = centre + ring_radius[:, None] * torch.stack([arc.sin(), arc.cos()], 1)
        rest = draws - draws // 2 - draws // 4 - draws // 8
        polar, turn = radius * uniform(rest).sqrt(), uniform(rest) * 2 * math.pi
        dies = centre + polar[:, None] * torch.stack([turn.sin(), turn.cos()], 1)
        points = torch.cat([blobs, lines, ring, dies]).round().long()
        inside = ((points.double() - centre) ** 2).sum(1) <= radius**2
        keys = torch.unique(torch.cat([keys, points[inside, 0] * size + points[inside, 1]]))
        draws *= 2
    keys = keys[torch.randperm(keys.numel(), generator=g)[:n]].sort().values
    return torch.stack([keys // size, keys % size], 1)


def wafer_batch(n: int) -> tuple[Tensor, Tensor]:
    """(B * n, 3) coords in raster order and (B * n, 1) features in [0.5, 1.5)."""
    coords = torch.cat(
        [torch.cat([torch.full((n, 1), b), wafer_sites(n, seed=b)], 1) for b in range(BATCH)]
    )
    return coords, 0.5 + torch.rand(coords.shape[0], 1, generator=torch.Generator().manual_seed(1))


def our_net() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(
        SubmanifoldConv2d(1, 16),
        SubmanifoldConv2d(16, 16),
        SparseConv2d(16, 32, 2, 2),
        SubmanifoldConv2d(32, 32),
    )


def spconv_net(ours: nn.Sequential) -> spconv.SparseSequential:
    net = spconv.SparseSequential(
        spconv.SubMConv2d(1, 16, 3, indice_key="full"),
        spconv.SubMConv2d(16, 16, 3, indice_key="full"),
        spconv.SparseConv2d(16, 32, 2, 2),
        spconv.SubMConv2d(32, 32, 3, indice_key="half"),
    )
    with torch.no_grad():
        for theirs, mine in zip(net, ours, strict=True):
            theirs.weight.copy_(weight_to_spconv(mine.weight, mine.kernel_size))
            theirs.bias.copy_(mine.bias)
    return net


def dense_net(ours: nn.Sequential) -> Callable[[Tensor], Tensor]:
    """The same network on the full grid: ``F.conv2d``, then inactive sites zeroed (the dense
    equivalent of a submanifold stack; without the mask activity would spread layer by layer)."""
    weights = [(weight_to_torch(m.weight, m.kernel_size), m.bias) for m in ours]

    def forward(x: Tensor) -> Tensor:
        mask = (x != 0).any(1, keepdim=True).to(x.dtype)
        for (w, b), layer in zip(weights, ours, strict=True):
            if isinstance(layer, SubmanifoldConv2d):
                x = F.conv2d(x, w, b, padding=1) * mask
            else:
                mask = F.max_pool2d(mask, 2, 2)
                x = F.conv2d(x, w, b, stride=2) * mask
        return x

    return forward


def index_add_net(ours: nn.Sequential, x: SparseTensor) -> Tensor:
    """Plain autograd on our rulebooks: per tap ``feats[in] @ W[tap]``, ``index_add_`` into out."""
    feats = x.feats
    for layer in ours:
        if isinstance(layer, SubmanifoldConv2d):
            rulebook, nxt = submanifold_rulebook(x, layer.kernel_size), x
            out = feats @ layer.weight[rulebook.centre] + layer.bias
        else:
            nxt, rulebook, _ = downsample_rulebook(x, layer.kernel_size, layer.stride)
            out = layer.bias.expand(rulebook.n_out, -1)
        bounds = rulebook.bounds
        for t, tap in enumerate(rulebook.taps):
            span = slice(bounds[t], bounds[t + 1])
            products = feats[rulebook.inputs[span]] @ layer.weight[tap]
            out = out.index_add(0, rulebook.outputs[span], products)
        x, feats = nxt, out
    return feats


def _sorted_rows(coords: Tensor, feats: Tensor) -> Tensor:
    key = (coords[:, 0] * GRID + coords[:, 1]) * GRID + coords[:, 2]
    return feats[torch.argsort(key)]


def _flops(ours: nn.Sequential, coords: Tensor) -> float:
    """Multiply-adds x 2 of the pairs our rulebooks connect (the sparse work of either side)."""
    x = SparseTensor(coords, torch.zeros(coords.shape[0], 1), (GRID, GRID), BATCH)
    total = 0.0
    for layer in ours:
        if isinstance(layer, SubmanifoldConv2d):
            pairs, x = submanifold_rulebook(x, layer.kernel_size).num_pairs + x.coords.shape[0], x
        else:
            x, rulebook, _ = downsample_rulebook(x, layer.kernel_size, layer.stride)
            pairs = rulebook.num_pairs
        total += 2.0 * pairs * layer.in_channels * layer.out_channels
    return total


def spconv_rows(cases: dict[int, tuple[Tensor, Tensor]]) -> list[Comparison]:
    rows = []
    for n, (coords, feats) in cases.items():
        ours = our_net()
        theirs = spconv_net(ours)
        coords32 = coords.int().contiguous()

        def run_ours() -> SparseTensor:
            with torch.no_grad():
                return ours(SparseTensor(coords, feats, (GRID, GRID), BATCH))

        def run_spconv() -> spconv.SparseConvTensor:
            with torch.no_grad():
                return theirs(spconv.SparseConvTensor(feats, coords32, [GRID, GRID], BATCH))

        mine, reference, again = run_ours(), run_spconv(), run_spconv()
        error = relative_error(
            _sorted_rows(mine.coords, mine.feats),
            _sorted_rows(reference.indices.long(), reference.features),
        )
        drift = relative_error(
            _sorted_rows(again.indices.long(), again.features),
            _sorted_rows(reference.indices.long(), reference.features),
        )
        if drift > 1e-5:  # measured: 0.1-0.2 with 2 threads at 2k and 20k sites, 1e-7 with 1
            print(
                f"{n} sites: spconv's CPU output differs between two identical calls (rel. "
                f"{drift:.1e}): its multi-threaded CPU kernels race, so 'rel err' against it is "
                "spconv's; ours is deterministic and equals the dense reference (tests)"
            )
        ours_s, base_s = paired_medians(run_ours, run_spconv, 3 if QUICK else REPEATS[n])
        label = f"{n // 1000}k sites x{BATCH} fwd"
        target = 1.3 if n <= 20_000 else 1.0  # issue 18: a clear lead at 2k and 20k sites
        rows.append(Comparison(label, ours_s, base_s, _flops(ours, coords), target, error))
    return rows


def training_rows(cases: dict[int, tuple[Tensor, Tensor]]) -> list[Comparison]:
    rows = []
    for n, (coords, feats) in cases.items():
        ours = our_net()

        def step(forward: Callable[[SparseTensor], Tensor]) -> Callable[[], None]:
            def run() -> None:
                ours.zero_grad(set_to_none=True)
                x = SparseTensor(coords, feats.detach().requires_grad_(), (GRID, GRID), BATCH)
                forward(x).square().mean().backward()

            return run

        ours_s, base_s = paired_medians(
            step(lambda x: ours(x).feats),
            step(lambda x: index_add_net(ours, x)),
            3 if QUICK else REPEATS[n],
        )
        label = f"{n // 1000}k sites x{BATCH} fwd+bwd"
        rows.append(Comparison(label, ours_s, base_s, 3 * _flops(ours, coords)))
    return rows


def dense_rows(coords: Tensor, feats: Tensor) -> list[Comparison]:
    low = (GRID - CROP) // 2
    keep = ((coords[:, 1:] >= low) & (coords[:, 1:] < low + CROP)).all(1)
    local = coords[keep] - torch.tensor([0, low, low])
    feats = feats[keep]
    print(f"\ndense crop {CROP}x{CROP} of the 2k-site wafers holds {local.shape[0]} sites")
    ours = our_net()
    dense = dense_net(ours)
    x = SparseTensor(local, feats, (CROP, CROP), BATCH)
    image = x.to_dense()
    with torch.no_grad():
        mine = ours(x)
        reference = dense(image).movedim(1, -1)[tuple(mine.coords.unbind(1))]
    error = relative_error(mine.feats, reference)
    flops = 2.0 * BATCH * CROP * CROP * 9 * (16 + 16 * 16) + 2.0 * BATCH * (CROP // 2) ** 2 * (
        4 * 16 * 32 + 9 * 32 * 32
    )

    def forward(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                fn()

        return run

    def train_sparse() -> None:
        ours.zero_grad(set_to_none=True)
        y = ours(SparseTensor(local, feats.detach().requires_grad_(), (CROP, CROP), BATCH))
        y.feats.square().mean().backward()

    def train_dense() -> None:
        dense(image.detach().requires_grad_()).square().mean().backward()

    sparse_fwd = forward(lambda: ours(SparseTensor(local, feats, (CROP, CROP), BATCH)))
    fwd = paired_medians(sparse_fwd, forward(lambda: dense(image)), 3)
    train = paired_medians(train_sparse, train_dense, 3)
    return [
        Comparison(f"crop {local.shape[0]} sites fwd", *fwd, flops, 50.0, error),
        Comparison(f"crop {local.shape[0]} sites fwd+bwd", *train, 3 * flops, 50.0, error),
    ]


def main() -> None:
    started = time.perf_counter()
    cases = {n: wafer_batch(n) for n in SITES}
    print(f"wafer maps generated in {time.perf_counter() - started:.1f} s")
    print_table(
        f"4-layer sparse net vs spconv {SPCONV_VERSION} CPU, forward "
        f"(grid {GRID}x{GRID}, batch {BATCH}; GF/s count connected pairs)",
        spconv_rows(cases),
        "spconv",
    )
    print_table(
        "4-layer sparse net forward+backward vs plain-autograd index_add_ on the same rulebooks "
        "(spconv has no CPU backward)",
        training_rows(cases),
        "index_add",
    )
    print_table(
        f"4-layer sparse net vs the dense conv net on a {CROP}x{CROP} crop (GF/s: dense FLOPs)",
        dense_rows(*cases[SITES[0]]),
        "dense",
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
