"""SparseWaferNet: a submanifold sparse CNN that classifies full-resolution wafer defect maps.

After Frittoli, Carrera, Rossi, Fragneto & Boracchi, "Deep Open-Set Recognition for Silicon Wafer
Production Monitoring" (arXiv:2208.14071, 2022). From the paper: a wafer defect map (WDM) is a huge,
sparse, binary image, the list of defect coordinates, and is classified at full resolution by a
Submanifold Sparse Convolutional Network (Graham & van der Maaten, 2017) instead of being binned to
a small dense image first; the classifier is trained on the known pattern classes only, and its
penultimate ("latent") features feed a Gaussian mixture that flags novel patterns
(:mod:`convsuite.semicon.openset`).

Ours (the paper's layer recipe is not followed): the stage layout below, strided ``k = s`` sparse
convolutions as the downsampling (a stride of 4 is two 2x downsamplings in one step), average and
max global pooling of the last stages concatenated (several scales, for the novelty
detector), a Linear + ReLU projection to ``feature_dim`` before the linear
head (a compact latent vector for the Gaussian mixture), a strided ``k = s`` input layer on windows
of the full-resolution map, and (``shape_profile``) a radial/angular pooling of the map appended to
the learned features: global shape for the novelty detector (see :class:`ShapeProfile`).

Layout, for ``strides = (s_0, ..., s_{S-1})`` and ``widths = (w_0, ..., w_{S-1})``::

    input    one feature (1.0) per defective cell on the G x G grid
    stage 0  s_0 == 1: SubmanifoldConv(1 -> w_0, 3) + BN + ReLU at full resolution
             s_0 > 1:  SparseConv(1 -> w_0, k = s = s_0) + BN + ReLU: a learned s_0 x s_0
                       window of the full-resolution map (core-ops computes it with one
                       input channel as an embedding bag), to G / s_0
             then blocks[0] x [SubmanifoldConv(w_0 -> w_0, 3) + BN + ReLU]
    stage i  SparseConv(w_{i-1} -> w_i, k = s = s_i) + BN + ReLU, then blocks[i] x
             [SubmanifoldConv(w_i -> w_i, 3) + BN + ReLU], on G / (s_0 ... s_i)
    head     [avg, max] global pools of the last ``pooled_stages`` stages (B, 2 sum of their
             widths) (or, ``head="flatten"``, the final grid's cells in place) -> Linear + ReLU
             (B, feature_dim), with ``shape_profile`` followed by the map's radial/angular
             profile (B, 13) -> features (B, n_features) -> Linear -> logits

Global shape. Average and max pools do not say where on the wafer a pattern lies, and a classifier
trained without a pattern need not keep that in its projection: with the pools alone a held-out
centre blob scored like the known off-centre ``loc`` blobs (novelty AUROC 0.89). The
:class:`ShapeProfile` (the defective fraction per radial ring, the unevenness around the wafer per
wider ring) is appended to the features the mixture reads: held-out centre 1.00, edge ring 0.98.
A learned coarse branch (a small dense CNN on a 32 x 32 binned view, pooled into the projection)
did not help (centre 0.86): trained on the known classes only, it learned nothing the pools lacked.

Cost. Sparse sets shrink slowly while defects are far apart: a map of 20k defects keeps about 2/3
of its sites down to a 256 grid, and only then shrinks fast (~3k sites at 64, ~220 at 16). So the
cost is in the first layers, and the presets differ there. ``base`` keeps a submanifold layer at
full resolution (the paper's premise: neighbouring defects seen at the inspection pitch), ~20
maps/s at 20k defects per map on one (shared) CPU core. ``small`` reads 16 x 16 windows of the
full-resolution map in one strided k = s layer (each window position has its own weights, so this
is not a binning) and runs 3 x 3 blocks only on the 16 and 4 grids: ~100 maps/s (batches of 8-16).
The last grid is 4 x 4 cells in both, where a 3 x 3 submanifold convolution sees most of the wafer:
there the network learns where on the wafer a pattern lies (centre, ring, edge).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor, nn

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import Pretrained, register_model
from convsuite.core_ops.layers import (
    SparseBatchNorm,
    SparseConv2d,
    SparseGlobalPool,
    SparseReLU,
    SparseTensor,
    SubmanifoldConv2d,
)
from convsuite.semicon.data import PATTERNS, WaferMap

__all__ = [
    "SparseWaferNet",
    "WaferNetConfig",
    "batch_wafer_maps",
    "wafer_coords",
]


@dataclass(frozen=True)
class WaferNetConfig(ModelConfig):
    """Architecture of :class:`SparseWaferNet`; the defaults are the ``base`` preset.

    Attributes:
        grid: side of the square input grid in cells (4096: 73 um cells on a 300 mm wafer). Maps
            on another grid are rescaled to it by :func:`batch_wafer_maps`.
        widths: channels of each stage.
        blocks: submanifold 3 x 3 blocks per stage (0 allowed).
        strides: downsampling factor entering each stage (1 only for stage 0: start at full
            resolution with a submanifold convolution). ``grid`` must be divisible by their
            product, the side of the last stage's grid.
        classes: the known pattern names, in logit order (``n_classes = len(classes)``).
        feature_dim: size of the penultimate feature vector (the novelty detector's input).
        head: how the last stage becomes one vector: ``"pool"``, average and max over the active
            cells (any final grid); ``"flatten"``, the final grid's cells in place (zeros where
            inactive), which keeps where on the wafer each feature is (needs a small final grid).
        pooled_stages: with ``head="pool"``, how many of the last stages are pooled into the
            feature vector (1: the last only; more adds finer scales, e.g. a thin scratch's trace).
    """

    grid: int = 4096
    widths: tuple[int, ...] = (16, 32, 48, 64, 96)
    blocks: tuple[int, ...] = (1, 1, 1, 1, 1)
    strides: tuple[int, ...] = (1, 8, 8, 4, 4)
    classes: tuple[str, ...] = PATTERNS
    feature_dim: int = 64
    head: Literal["pool", "flatten"] = "pool"
    pooled_stages: int = 1
    shape_profile: bool = False
    clump_statistics: bool = False

    def __post_init__(self) -> None:
        for name in ("widths", "blocks", "strides", "classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        stages = len(self.widths)
        if stages == 0 or len(self.blocks) != stages or len(self.strides) != stages:
            raise ValueError(
                f"widths, blocks and strides need one entry per stage, got {len(self.widths)}, "
                f"{len(self.blocks)}, {len(self.strides)}"
            )
        if min(self.widths) < 1 or min(self.blocks) < 0 or min(self.strides) < 1:
            raise ValueError("widths and strides must be >= 1 and blocks >= 0")
        if any(s == 1 for s in self.strides[1:]):
            raise ValueError(f"only the first stage may have stride 1, got {self.strides}")
        if self.grid % math.prod(self.strides):
            raise ValueError(
                f"grid {self.grid} is not divisible by the total stride {math.prod(self.strides)}"
            )
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be >= 2 distinct names, got {self.classes}")
        if self.head not in ("pool", "flatten"):
            raise ValueError(f"head must be 'pool' or 'flatten', got {self.head!r}")
        if not 1 <= self.pooled_stages <= stages:
            raise ValueError(f"pooled_stages must be in [1, {stages}], got {self.pooled_stages}")
        if self.feature_dim < 1:
            raise ValueError(f"feature_dim must be >= 1, got {self.feature_dim}")

    @property
    def n_classes(self) -> int:
        """Number of known classes (logits)."""
        return len(self.classes)

    @property
    def final_grid(self) -> int:
        """Side of the last stage's grid."""
        return self.grid // math.prod(self.strides)


class ShapeProfile(nn.Module):
    """Radial and angular pooling of the map: where on the wafer the defects are (no parameters).

    Per map, from the defective cells of the (G, G) input (the wafer a disk of radius G / 2 about
    the grid centre): ``log(f + 1e-4)`` of the defective fraction ``f`` of each of ``rings``
    equal-width rings (a centre blob, a donut, an edge ring: the radial profile), for each of
    ``groups`` wider rings ``log1p`` of the coefficient of variation of the counts over 8
    angular sectors (an edge ring is even, an edge blob is not), and ``log(f + 1e-4)`` of the
    whole wafer. Invariant to the 8 symmetries of the square (the augmentations): the sectors are
    45 degrees wide, centred on the axes and diagonals. Integer arithmetic and comparisons only
    (no square roots or arc tangents: a third of the network's time before).

    Shapes:
        (N, 1) features on (B, G, G) -> (B, rings + groups + 1) float32.
    """

    def __init__(self, rings: int = 8, groups: int = 4) -> None:
        super().__init__()
        if rings < 1 or groups < 1:
            raise ValueError(f"need rings and groups >= 1, got {rings}, {groups}")
        self.rings, self.groups = rings, groups
        self.out_features = rings + groups + 1

    def forward(self, x: SparseTensor) -> Tensor:
        height, width = x.spatial_shape
        radius = min(height, width) / 2.0
        batch = x.coords[:, 0]
        # Twice the offsets from the centre: odd integers (cells centred on half-integers), so
        # squared distances and the comparisons below are exact.
        y2 = 2 * x.coords[:, 1] + 1 - height
        x2 = 2 * x.coords[:, 2] + 1 - width
        d2 = x2 * x2 + y2 * y2  # (2 r radius)^2, never on a ring edge (it is odd / 2 mod 1)

        def ring_of(parts: int) -> Tensor:  # floor(r * parts), r in wafer radii, capped
            edges = (2 * radius * torch.arange(1, parts, dtype=torch.float64) / parts) ** 2
            return torch.bucketize(d2.double(), edges, right=True)

        def counts(index: Tensor, size: int) -> Tensor:
            out = torch.bincount(batch * size + index, minlength=x.batch_size * size)
            return out.view(x.batch_size, size).double()

        ring = ring_of(self.rings)
        edges = torch.arange(self.rings + 1, dtype=torch.float64) / self.rings
        ring_cells = math.pi * radius**2 * (edges[1:] ** 2 - edges[:-1] ** 2)
        per_ring = counts(ring, self.rings)
        radial = torch.log(per_ring / ring_cells + 1e-4)
        # Sector k is centred on k x 45 degrees (0: +x, counter-clockwise with y = row offset),
        # its edges at 22.5 degrees off: never met by a cell centre, so a transpose or a rotation
        # of the map permutes the sectors. Found by comparing |dy| with tan(22.5) |dx|.
        ax, ay = x2.abs().double(), y2.abs().double()
        tan = math.tan(math.pi / 8)
        along_x, along_y = ay < tan * ax, ax < tan * ay
        diagonal = torch.where(x2 > 0, torch.where(y2 > 0, 1, 7), torch.where(y2 > 0, 3, 5))
        sector = torch.where(
            along_x,
            torch.where(x2 > 0, 0, 4),
            torch.where(along_y, torch.where(y2 > 0, 2, 6), diagonal),
        )
        # floor(floor(8 r) / 2) = floor(4 r): the wider rings from the rings when they nest
        if self.rings % self.groups == 0:
            group = ring * self.groups // self.rings
        else:
            group = ring_of(self.groups)
        per_sector = counts(group * 8 + sector, self.groups * 8)
        per_sector = per_sector.view(x.batch_size, self.groups, 8)
        unevenness = torch.log1p(per_sector.std(-1) / (per_sector.mean(-1) + 1.0))
        total = per_ring.sum(1, keepdim=True) / (math.pi * radius**2)
        return torch.cat([radial, unevenness, torch.log(total + 1e-4)], 1).float()


class ClumpStatistics(nn.Module):
    """How the defects clump, at three window sizes (no parameters): for the novelty detector.

    For windows of 1/256, 1/64 and 1/16 of the grid side (16, 64 and 256 cells on the 4096 grid:
    1.2, 4.7 and 19 mm), over the windows holding defects: ``log`` of their number per defective
    cell (0 when every defect has a window to itself, very negative for tight clusters),
    ``log1p`` of the largest count and ``log1p`` of the counts' standard deviation. A mask defect
    repeated in every reticle field (many small clusters on a lattice) or a long thin spiral
    clumps unlike any known pattern while its pools and radial profile look ordinary.

    Shapes:
        (N, 1) features on (B, G, G) -> (B, 9) float32.
    """

    out_features = 9
    _FRACTIONS = (256, 64, 16)

    def forward(self, x: SparseTensor) -> Tensor:
        height, width = x.spatial_shape
        batch = x.coords[:, 0]
        sites = torch.bincount(batch, minlength=x.batch_size).double().clamp(min=1.0)
        parts = []
        table, previous = None, 0
        for fraction in self._FRACTIONS:
            cell = max(1, min(height, width) // fraction)
            rows, cols = -(-height // cell), -(-width // cell)
            if (
                table is not None
                and cell % previous == 0
                and table.shape[1] * previous == rows * cell
                and table.shape[2] * previous == cols * cell
            ):
                # windows of the finer table summed in blocks: no second pass over the sites
                step = cell // previous
                table = table.view(x.batch_size, rows, step, cols, step).sum((2, 4))
            else:
                keys = (batch * rows + x.coords[:, 1] // cell) * cols + x.coords[:, 2] // cell
                # one count per window of every map (a dense (B, rows, cols) table: no sorting)
                table = torch.bincount(keys, minlength=x.batch_size * rows * cols)
                table = table.view(x.batch_size, rows, cols)
            previous = cell
            counts = table.view(x.batch_size, -1)
            windows = (counts > 0).sum(1).double().clamp(min=1.0)
            mean = sites / windows
            square = (counts * counts).sum(1).double() / windows
            parts += [
                torch.log(windows / sites),
                torch.log1p(counts.amax(1).double()),
                torch.log1p((square - mean**2).clamp(min=0.0).sqrt()),
            ]
        return torch.stack(parts, 1).float()


_PRESETS: dict[str, WaferNetConfig] = {
    # Submanifold 3 x 3 at full resolution (the paper's point), then 4096 -> 512 -> 64 -> 16 -> 4.
    # Not for CPU streams: the full-resolution layer and the 8 x 8 strided ones cost most.
    "base": WaferNetConfig(),
    # The bundled weights and CPU streams: the first layer reads 16 x 16 windows of the
    # full-resolution map (a k = s layer), then 256 -> 64 -> 16 -> 4 with 3 x 3 blocks on the last
    # two grids. ~100 maps/s at 20k defects per map on one (shared) CPU core. The features pool
    # the 64, 16 and 4 grids: with the last grid alone a novel thin scratch looked like known
    # patterns to the mixture (AUROC 0.74 held out; 0.96 with three grids pooled).
    # With the shape profile appended to the features (radial/angular pooling), a held-out
    # centre pattern scored AUROC 1.00 instead of 0.89 (the pools are blind to where on the
    # wafer a pattern lies, so a centre blob looked like a known off-centre one).
    "small": WaferNetConfig(
        widths=(16, 32, 48, 64),
        blocks=(0, 0, 1, 1),
        strides=(16, 4, 4, 4),
        feature_dim=64,
        pooled_stages=3,
        shape_profile=True,
        clump_statistics=True,
    ),
    # Die maps (WM-811K, 25-212 dies across): a 64 grid (a die covers the cells under it), a
    # submanifold 3 x 3 at that pitch, then 16 -> 4; the shape profile (radial/angular pooling).
    "die": WaferNetConfig(
        grid=64,
        widths=(16, 32, 48),
        blocks=(1, 1, 1),
        strides=(1, 4, 4),
        feature_dim=32,
        pooled_stages=3,
        shape_profile=True,
        clump_statistics=True,
    ),
    # Tests: a 256 grid -> 64 -> 16 -> 4.
    "tiny": WaferNetConfig(
        grid=256,
        widths=(8, 16, 24),
        blocks=(0, 1, 1),
        strides=(4, 4, 4),
        feature_dim=16,
        pooled_stages=2,
    ),
}


def _unit(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, SparseBatchNorm(channels), SparseReLU())


@register_model("wafer_sparse", presets=_PRESETS, default_preset="small")
class SparseWaferNet(Pretrained, nn.Module):
    """Submanifold sparse CNN classifier of wafer defect maps (see the module docstring).

    Registered as ``"wafer_sparse"`` with the presets ``base``, ``small`` (default; the bundled
    weights) and ``tiny`` (tests): ``create_model("wafer_sparse", preset="tiny")``. The bundled
    weights load with ``SparseWaferNet.from_pretrained()`` (``"wafer_monitor_small"``).

    Args:
        config: the architecture.

    Shapes:
        input: :class:`SparseTensor` with (N, 1) features on (B, grid, grid), e.g. from
        :func:`batch_wafer_maps`; :meth:`features` -> (B, feature_dim) float32, >= 0;
        :meth:`forward` -> (B, n_classes) logits.
    """

    config_class = WaferNetConfig
    bundled_package = "convsuite.semicon"
    default_weights = "wafer_monitor_small"

    def __init__(self, config: WaferNetConfig) -> None:
        super().__init__()
        self.config = config
        stages: list[nn.Module] = []
        previous = 1
        for width, blocks, stride in zip(config.widths, config.blocks, config.strides, strict=True):
            if stride == 1:  # stage 0 at full resolution
                entry = SubmanifoldConv2d(previous, width, 3, bias=False)
            else:  # k = s (with one input channel: core-ops' fast window embedding bag)
                entry = SparseConv2d(previous, width, stride, stride, bias=False)
            layers = [_unit(entry, width)]
            layers += [
                _unit(SubmanifoldConv2d(width, width, 3, bias=False), width) for _ in range(blocks)
            ]
            stages.append(nn.Sequential(*layers))
            previous = width
        self.stages = nn.Sequential(*stages)
        self.avg_pool, self.max_pool = SparseGlobalPool("avg"), SparseGlobalPool("max")
        if config.head == "pool":
            pooled = 2 * sum(config.widths[-config.pooled_stages :])
        else:
            pooled = previous * config.final_grid**2
        self.project = nn.Sequential(nn.Linear(pooled, config.feature_dim), nn.ReLU())
        self.profile = ShapeProfile() if config.shape_profile else None
        self.n_features = config.feature_dim + (self.profile.out_features if self.profile else 0)
        self.head = nn.Linear(self.n_features, config.n_classes)
        self.clumps = ClumpStatistics() if config.clump_statistics else None
        self.n_novelty_features = self.n_features + (self.clumps.out_features if self.clumps else 0)

    def _check(self, x: SparseTensor) -> None:
        if not isinstance(x, SparseTensor):
            raise ValueError(f"SparseWaferNet takes a SparseTensor, got {type(x).__name__}")
        grid = self.config.grid
        if x.spatial_shape != (grid, grid) or x.feats.shape[1] != 1:
            raise ValueError(
                f"expected (N, 1) features on a ({grid}, {grid}) grid, got "
                f"({x.feats.shape[0]}, {x.feats.shape[1]}) on {x.spatial_shape}: build the input "
                "with batch_wafer_maps(maps, config.grid)"
            )

    def forward_features(self, x: SparseTensor) -> SparseTensor:
        """The last stage's sparse feature map: (M, widths[-1]) on (B, final_grid, final_grid)."""
        self._check(x)
        return self.stages(x)

    def pooled_features(self, x: SparseTensor) -> Tensor:
        """[avg, max] pools of the last ``pooled_stages`` stages, (B, 2 sum(their widths))."""
        self._check(x)
        pools = []
        first_pooled = len(self.stages) - self.config.pooled_stages
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i >= first_pooled:
                pools += [self.avg_pool(x), self.max_pool(x)]
        return torch.cat(pools, 1)

    def features(self, x: SparseTensor) -> Tensor:
        """Penultimate features (B, n_features): pooled (or flattened) stages, Linear, ReLU;
        then, with ``shape_profile``, the map's radial/angular profile (:class:`ShapeProfile`)."""
        if self.config.head == "flatten":
            pooled = self.forward_features(x).to_dense().flatten(1)
        else:
            pooled = self.pooled_features(x)
        features = self.project(pooled)
        if self.profile is not None:
            features = torch.cat([features, self.profile(x)], 1)
        return features

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, n_features) features -> (B, n_classes) logits."""
        return self.head(features)

    @property
    def novelty_blocks(self) -> list[tuple[int, int]]:
        """Column ranges of the novelty features scored apart (:class:`FusedNoveltyDetector`):
        the learned features, then (when present) the parameter-free map statistics (shape
        profile, clump statistics)."""
        learned = self.config.feature_dim
        statistics = (
            [(learned, self.n_novelty_features)] if self.n_novelty_features > learned else []
        )
        return [(0, learned), *statistics]

    def novelty_features(self, x: SparseTensor, features: Tensor) -> Tensor:
        """What the novelty detector reads, (B, n_novelty_features): ``features`` (from
        :meth:`features`), with ``clump_statistics`` followed by :class:`ClumpStatistics`."""
        if self.clumps is None:
            return features
        return torch.cat([features, self.clumps(x).to(features.dtype)], 1)

    def forward(self, x: SparseTensor) -> Tensor:
        """(B, n_classes) logits of the known classes."""
        return self.forward_head(self.features(x))


# ------------------------------------------------------------------------------------------------
# Input: wafer maps -> one SparseTensor per batch.

_DIHEDRAL = 8
_MAX_UPSAMPLING = 16
"""Largest factor by which :func:`wafer_coords` enlarges a coarser map's cells (a 256 grid on the
4096 one); a 50-die map on the 4096 grid would make each die ~6,700 sites."""


def wafer_coords(wafer: WaferMap, grid: int, transform: int = 0) -> np.ndarray:
    """The map's defective cells on a ``grid`` x ``grid`` square, sorted by (row, col).

    A map whose grid is ``grid`` x ``grid`` keeps its cells. Otherwise the map is centred in a
    square of side ``max(H, W)`` (as :meth:`WaferMap.binned`) and resampled with its pitch carried
    through: on a finer grid than ``grid`` each cell centre is scaled to the new grid (cells that
    land together merge); on a coarser one (a WM-811K die map on a 64 grid) each cell, a die,
    becomes the block of grid cells it covers, so a failed die stays a filled square, not a dot.
    The network was trained at one pitch: maps from another resolution are accepted but less
    faithful.

    Args:
        wafer: the map.
        grid: side of the target square grid.
        transform: one of the 8 symmetries of the square (0: identity; 1-3: rotations by 90, 180,
            270 degrees; 4-7: a transpose, then those rotations). The wafer disk is symmetric under
            all of them, so they are label-preserving augmentations.

    Returns:
        (N, 2) int64 (row, col), unique, sorted.

    Raises:
        InputError: the map's cells are more than 16 times coarser than the grid's.
    """
    coords = wafer.coords
    height, width = wafer.grid_shape
    merge = transform != 0
    if (height, width) != (grid, grid):
        side = max(height, width)
        offset = np.array([(side - height) / 2.0, (side - width) / 2.0])
        if side < grid:  # coarser cells (dies): each covers every grid cell under it
            if side * _MAX_UPSAMPLING < grid:
                raise InputError(
                    wafer.name or "wafer map",
                    f"a {height} x {width} map (die-level?) is too coarse for a network on a "
                    f"{grid} grid: use a monitor trained on such maps (train --preset die)",
                )
            coords = _cover(coords + offset, grid / side, grid)
        else:
            scaled = np.floor((coords + offset + 0.5) * (grid / side)).astype(np.int64)
            coords = np.clip(scaled, 0, grid - 1)
        merge = True
    if transform:
        if not 0 <= transform < _DIHEDRAL:
            raise ValueError(f"transform must be in [0, 8), got {transform}")
        rows, cols = coords[:, 0], coords[:, 1]
        if transform >= 4:
            rows, cols = cols, rows
        for _ in range(transform % 4):  # rotate by 90 degrees: (r, c) -> (c, G - 1 - r)
            rows, cols = cols, grid - 1 - rows
        coords = np.stack([rows, cols], 1)
    if merge and len(coords):
        flat = np.unique(coords[:, 0] * grid + coords[:, 1])
        coords = np.stack([flat // grid, flat % grid], 1)
    return coords


def _cover(cells: np.ndarray, scale: float, grid: int) -> np.ndarray:
    """The ``grid`` cells that the squares of (N, 2) float ``cells`` cover, at ``scale`` > 1
    grid cells per cell: (M, 2) int64, in blocks of ``floor(scale)`` or ``ceil(scale)`` per side."""
    start = np.clip(np.round(cells * scale).astype(np.int64), 0, grid)
    stop = np.clip(np.round((cells + 1.0) * scale).astype(np.int64), 0, grid)
    span = int(math.ceil(scale)) + 1
    steps = np.arange(span)
    rows = start[:, :1] + steps[None]  # (N, span) candidate rows, kept where < stop
    cols = start[:, 1:] + steps[None]
    keep = (rows < stop[:, :1])[:, :, None] & (cols < stop[:, 1:])[:, None, :]
    rows = np.broadcast_to(rows[:, :, None], keep.shape)[keep]
    cols = np.broadcast_to(cols[:, None, :], keep.shape)[keep]
    return np.stack([rows, cols], 1)


def batch_wafer_maps(
    maps: Sequence[WaferMap], grid: int, transforms: Sequence[int] | None = None
) -> SparseTensor:
    """Collate wafer maps into one :class:`SparseTensor`, one feature (1.0) per defective cell.

    Args:
        maps: B wafer maps (any grid; see :func:`wafer_coords` for maps not on ``grid``).
        grid: side of the network's input grid (``config.grid``).
        transforms: per map, a square symmetry for augmentation (see :func:`wafer_coords`).

    Returns:
        coords (N, 3) int64 (batch, row, col) sorted, feats (N, 1) float32 ones, spatial shape
        (grid, grid), batch size B (a map without defects has no rows and pools to zeros).
    """
    if transforms is None:
        transforms = [0] * len(maps)
    if len(transforms) != len(maps):
        raise ValueError(f"{len(transforms)} transforms for {len(maps)} maps")
    parts = [wafer_coords(w, grid, t) for w, t in zip(maps, transforms, strict=True)]
    sizes = np.array([len(p) for p in parts], dtype=np.int64)
    coords = np.empty((int(sizes.sum()), 3), dtype=np.int64)
    coords[:, 0] = np.repeat(np.arange(len(parts)), sizes)
    if len(coords):
        coords[:, 1:] = np.concatenate(parts)
    coords_t = torch.from_numpy(coords)
    return SparseTensor(coords_t, torch.ones(len(coords), 1), (grid, grid), len(parts))
