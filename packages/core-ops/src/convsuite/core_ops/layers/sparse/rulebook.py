"""Rulebooks: for each kernel tap, the (input row, output row) pairs it connects.

Submanifold layers: every site becomes one int64 key, row-major over (batch, *grid) with the grid
padded by the kernel radius, so that a neighbour's key is the site's key plus a constant per offset
(no wrap-around between rows or batch items). Keys are sorted once (inputs usually arrive sorted:
then not at all). For the runs of taps along the last axis before the window's middle, one
``torch.searchsorted`` finds each run's first candidate for all sites at once and the rest of the
run is a vectorised compare-and-step walk (consecutive keys sit at consecutive sorted positions);
the runs after the middle are their mirror images, filled by one scatter; the middle run walks out
from the site itself. No Python loop touches individual sites.

Strided layers: with kernel == stride each site's window and tap are column arithmetic (shifts and
masks for powers of two); ``torch.unique`` numbers the output sites in raster order
(:func:`window_map`), and one sort of the pairs makes the rulebook, with no (K, M) table.

The compiled passes (:mod:`.kernels`, numba) are imported on first use, as the dispatcher's
depthwise kernels are: importing the layers does not import numba.

Rulebooks are cached in ``SparseTensor._cache``, a dict that every tensor on the same sites shares,
so each resolution of a network builds its rulebook once per input.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from convsuite.core_ops.layers.sparse.tensor import SparseTensor

__all__ = [
    "Rulebook",
    "WindowMap",
    "downsample_rulebook",
    "submanifold_rulebook",
    "window_map",
    "window_rulebook",
]

# Keys are int64; keep headroom so that key + offset never overflows.
_MAX_KEY = 1 << 62


def _row_major_strides(extents: Sequence[int]) -> list[int]:
    strides, step = [], 1
    for extent in reversed(extents):
        strides.append(step)
        step *= extent
    return strides[::-1]


def _linear_keys(
    coords: Tensor, extents: Sequence[int], shift: Sequence[int] | None = None
) -> Tensor:
    """One int64 key per (b, i_1, ..., i_D) row: row-major over (batch, *extents), i_d + shift_d."""
    key = coords[:, 0]
    for axis, extent in enumerate(extents):
        key = key * extent + coords[:, 1 + axis]
    return key + _key_offset(shift, extents)


def _key_offset(shift: Sequence[int] | None, extents: Sequence[int]) -> int:
    """What a per-axis ``shift`` of every site adds to its :func:`_linear_keys` key (0 for None)."""
    if shift is None:
        return 0
    return sum(s * t for s, t in zip(shift, _row_major_strides(extents), strict=True))


def _decode_keys(keys: Tensor, extents: Sequence[int]) -> Tensor:
    """Inverse of :func:`_linear_keys` without shift: (M,) keys -> (M, 1 + D) coordinates."""
    columns = []
    for extent in reversed(extents):
        columns.append(keys % extent)
        keys = keys // extent
    columns.append(keys)
    return torch.stack(columns[::-1], 1)


def _sorted_keys(x: SparseTensor, radius: tuple[int, ...]) -> tuple[Tensor, Tensor | None]:
    """Sorted keys of the sites in the grid padded by ``radius``, between two sentinels that match
    no query (sorted position p is index p + 1), and the sort order (None: already sorted).
    """
    entry = ("keys", radius)
    if entry not in x._cache:
        extents = [s + 2 * r for s, r in zip(x.spatial_shape, radius, strict=True)]
        if math.prod([max(x.batch_size, 1), *extents]) >= _MAX_KEY:
            raise ValueError(f"grid {[x.batch_size, *extents]} is too large for int64 keys")
        ascending = _compiled_keys(x, extents, radius)
        if ascending is not None:  # raster order: keys from one compiled pass, no sort
            x._cache[entry] = (ascending, None)
            return x._cache[entry]
        keys = _linear_keys(x.coords, extents, radius)
        order = None
        if keys.numel() > 1 and not bool((keys[1:] > keys[:-1]).all()):
            keys, order = torch.sort(keys)
            if bool((keys[1:] == keys[:-1]).any()):
                raise ValueError("coords has duplicate rows: each active site must appear once")
        sentinel = keys.new_full((1,), _MAX_KEY)
        x._cache[entry] = (torch.cat([-sentinel, keys, sentinel]), order)
    return x._cache[entry]


def _compiled_keys(
    x: SparseTensor, extents: Sequence[int], shift: Sequence[int] | None = None
) -> Tensor | None:
    """:func:`_linear_keys` between sentinels (``-_MAX_KEY``, ``_MAX_KEY``) by one compiled pass,
    or None: not on CPU / not int64 contiguous, disabled, or not strictly ascending (then the
    tensor path sorts and checks duplicates)."""
    coords = x.coords
    if not (
        COMPILED_ROW_OPS
        and coords.device.type == "cpu"
        and coords.dtype == torch.int64
        and coords.is_contiguous()
    ):
        return None
    from convsuite.core_ops.layers.sparse.kernels import raster_keys  # numba: lazily

    offset = _key_offset(shift, extents)
    keys, ascending = raster_keys(coords.numpy(), np.asarray(extents, np.int64), offset, _MAX_KEY)
    return torch.from_numpy(keys) if ascending else None


def _neighbour_candidates(
    keys: Tensor, kernel: Sequence[int], strides: Sequence[int]
) -> tuple[Tensor, Tensor, list[int], int]:
    """Where each sorted site's neighbour at each centred offset would be, and whether it is there.

    The window is cut into runs along the last axis. For the runs before the middle one
    ``searchsorted`` call finds each run's first candidate; consecutive keys sit at consecutive
    sorted positions, so each next tap's candidate is the previous one, moved on by one where that
    one was found. The runs after the middle are their mirror images (a scatter, no search), and
    the middle run walks out from the site itself.

    Args:
        keys: the N sorted keys between sentinels, from :func:`_sorted_keys`.
        kernel: window size per axis; taps are numbered row-major over the window.
        strides: key strides of the spatial axes.

    Returns:
        ``(candidates, found, taps, centre)``: (K, N) sentinel-padded indices (sorted position + 1)
        of the neighbours, meaningful where the (K, N) ``found``; row r belongs to tap
        ``taps[r]``, and row ``centre`` is the site itself.
    """
    n, device = keys.numel() - 2, keys.device
    sites = keys[1 : n + 1]
    run, radius = kernel[-1], kernel[-1] // 2
    prefixes = itertools.product(*(range(-(k // 2), k // 2 + 1) for k in kernel[:-1]))
    shifts = [sum(o * s for o, s in zip(p, strides[:-1], strict=True)) for p in prefixes]
    middle = len(shifts) // 2  # the run through the site itself (shift 0)
    searched = list(range(middle))
    candidates = torch.empty((len(shifts) * run, n), dtype=torch.int64, device=device)
    found = torch.empty((len(shifts) * run, n), dtype=torch.bool, device=device)
    index = torch.arange(1, n + 1, device=device)

    def check(rows: slice, query: Tensor) -> None:
        block = candidates[rows]
        torch.eq(keys.index_select(0, block.view(-1)).view_as(block), query, out=found[rows])

    # Runs before the middle are searched, step-major: rows [step * O, (step + 1) * O) hold step
    # `step` of each of the O runs.
    width = len(searched)
    if width:
        first = sites + torch.tensor([shifts[i] - radius for i in searched], device=device)[:, None]
        torch.add(torch.searchsorted(sites, first), 1, out=candidates[:width])
        for step in range(run):
            rows = slice(step * width, (step + 1) * width)
            if step:
                previous = slice((step - 1) * width, step * width)
                torch.add(candidates[previous], found[previous], out=candidates[rows])
            check(rows, first if step == 0 else first + step)
        # Runs after the middle mirror them: j is i's neighbour at offset d exactly when i is j's
        # at -d, so scatter instead of searching (misses land in the unused slot 0).
        block = width * run
        slots = candidates[:block] * found[:block]
        mirror = torch.zeros((block, n + 2), dtype=torch.int64, device=device)
        mirror.scatter_(1, slots, index.expand(block, n))
        candidates[block : 2 * block] = mirror[:, 1 : n + 1]
        torch.ne(candidates[block : 2 * block], 0, out=found[block : 2 * block])
    # Then the centre run: pairs of rows (down, up) per step, the site itself last.
    base = 2 * width * run
    direction = torch.tensor([[-1], [1]], device=device)
    for step in range(1, radius + 1):
        rows = slice(base + 2 * (step - 1), base + 2 * step)
        if step == 1:
            torch.add(index, direction, out=candidates[rows])
        else:
            previous = slice(rows.start - 2, rows.start)
            torch.add(candidates[previous], direction * found[previous], out=candidates[rows])
        check(rows, sites + direction * step)
    centre = base + 2 * radius
    candidates[centre] = index
    found[centre] = True
    taps, centre_tap = _tap_order(kernel)  # the rows' taps, in the order laid out above
    return candidates, found, [*taps, centre_tap], centre


# Below this many pairs ``index_add_`` sums pair products as fast as a CSR matmul, and building
# the CSR index would cost more than it saves.
CSR_MIN_PAIRS = 1 << 14
# Below CSR_MIN_PAIRS, gather pair rows and sum products by the serial compiled loops of
# :mod:`.kernels` (float32/float64 on CPU) instead of ``index_select`` / ``index_add_``, and (at
# any size) compute the site keys and their raster-order check in one compiled pass
# (:func:`_compiled_keys`): the same values, without per-op dispatch and thread-pool costs
# (together a seventh of a 4-layer forward at 2k sites). False: the torch ops (tests compare).
COMPILED_ROW_OPS = True


def _compiled_rows(*tensors: Tensor) -> bool:
    """Whether the serial compiled row loops apply: all CPU, one float32/float64 dtype, contiguous."""
    dtype = tensors[0].dtype
    return (
        COMPILED_ROW_OPS
        and all(t.device.type == "cpu" and t.dtype == dtype and t.is_contiguous() for t in tensors)
        and dtype in (torch.float32, torch.float64)
    )


@dataclass
class Rulebook:
    """The (input row, output row) pairs of one sparse convolution, grouped by weight tap.

    Attributes:
        n_in, n_out: rows of the input and output features.
        centre: the tap computed as a plain GEMM over all rows (a submanifold kernel's centre pairs
            every site with itself), or -1.
        taps: the other taps that have pairs, and ``bounds``: pairs ``bounds[t]:bounds[t + 1]``
            belong to ``taps[t]`` (Python ints: the compute loops over taps).
        inputs, outputs: (P,) input and output row of each pair; within a tap, by output row.
        to_outputs, to_inputs: (crow, col) of the (n_out, P) and (n_in, P) 0/1 CSR matrices that
            sum pair products into output / input rows, or None: below :data:`CSR_MIN_PAIRS`
            pairs, or ``to_inputs`` of a submanifold rulebook, whose backward reuses
            ``to_outputs`` by mirror symmetry.
    """

    n_in: int
    n_out: int
    centre: int
    taps: list[int]
    bounds: list[int]
    inputs: Tensor
    outputs: Tensor
    to_outputs: tuple[Tensor, Tensor] | None
    to_inputs: tuple[Tensor, Tensor] | None
    _csr: dict = field(default_factory=dict, repr=False)

    @property
    def num_pairs(self) -> int:
        return self.inputs.numel()

    def _matrix(self, side: str, dtype: torch.dtype) -> Tensor:
        key = (side, dtype)
        if key not in self._csr:
            crow, col = self.to_outputs if side == "outputs" else self.to_inputs  # type: ignore[misc]
            rows = self.n_out if side == "outputs" else self.n_in
            ones = torch.ones(col.numel(), dtype=dtype, device=col.device)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                self._csr[key] = torch.sparse_csr_tensor(
                    crow, col, ones, (rows, self.num_pairs), check_invariants=False
                )
        return self._csr[key]

    def gather_inputs(self, rows: Tensor) -> Tensor:
        """(P, C): ``rows`` (n_in, C) at each pair's input row."""
        if self.num_pairs < CSR_MIN_PAIRS and _compiled_rows(rows):
            from convsuite.core_ops.layers.sparse.kernels import take_rows  # numba: lazily

            return torch.from_numpy(take_rows(rows.detach().numpy(), self.inputs.numpy()))
        return rows.index_select(0, self.inputs)

    def sum_to_outputs(self, products: Tensor, base: Tensor) -> Tensor:
        """``base`` (n_out, C) plus each pair's (P, C) product added at its output row (in place
        below :data:`CSR_MIN_PAIRS` pairs)."""
        if self.to_outputs is None:
            return _add_rows(base, self.outputs, products)
        return torch.addmm(base, self._matrix("outputs", products.dtype), products)

    def sum_to_inputs(self, products: Tensor) -> Tensor:
        """(n_in, C): each pair's (P, C) product added at its input row."""
        if self.to_inputs is None:
            base = products.new_zeros(self.n_in, products.shape[1])
            return _add_rows(base, self.inputs, products)
        return self._matrix("inputs", products.dtype) @ products


def _add_rows(base: Tensor, index: Tensor, products: Tensor) -> Tensor:
    """``base.index_add_(0, index, products)``, by the compiled loop where it applies."""
    if index.numel() < CSR_MIN_PAIRS and _compiled_rows(base, products):
        from convsuite.core_ops.layers.sparse.kernels import add_rows  # numba: lazily

        add_rows(base.detach().numpy(), index.numpy(), products.detach().numpy())
        return base
    return base.index_add_(0, index, products)


def _csr_pointers(counts: Tensor) -> Tensor:
    """CSR row pointers from per-row counts."""
    pointers = counts.new_zeros(counts.numel() + 1)
    torch.cumsum(counts, 0, out=pointers[1:])
    return pointers


def _pairs(
    table: Tensor,
    valid: Tensor,
    n_in: int,
    taps: list[int],
    centre: int,
    with_inputs: bool,
    shift: int = 0,
) -> Rulebook:
    """Rulebook from a (R, n_out) ``table`` of input rows (minus ``shift``) and ``valid`` mask.

    Row r of both belongs to weight tap ``taps[r]``; row ``centre`` (if >= 0) is left to a plain
    GEMM. ``with_inputs``: also index the sums into input rows (strided backward). ``valid`` is
    consumed.
    """
    num_rows, n_out = table.shape
    device = table.device
    if centre >= 0:
        valid[centre] = False
    flat = valid.view(-1).nonzero()[:, 0]  # row-major: by tap, then by output row
    row_starts = torch.arange(num_rows + 1, device=device) * n_out
    ends = torch.searchsorted(flat, row_starts).tolist()
    kept = [r for r in range(num_rows) if ends[r + 1] > ends[r]]
    bounds = [0] + [ends[r + 1] for r in kept]
    inputs = table.view(-1).index_select(0, flat)
    if shift:
        inputs += shift
    outputs = flat % max(n_out, 1)
    to_outputs = to_inputs = None
    if flat.numel() >= max(CSR_MIN_PAIRS, 1):
        # CSR by output row: a pair's slot is its row's start plus that row's pairs in earlier
        # taps. (A loop of row adds: torch's cumsum over dim 0 is an order of magnitude slower.)
        counter = torch.uint8 if num_rows < 256 else torch.int32
        upto = torch.empty((num_rows, n_out), dtype=counter, device=device)
        running = torch.zeros(n_out, dtype=counter, device=device)
        for r in range(num_rows):
            running = torch.add(running, valid[r], out=upto[r])
        pointers = _csr_pointers(running.long())
        slot = pointers.index_select(0, outputs) + upto.view(-1).index_select(0, flat) - 1
        numbered = torch.arange(flat.numel(), device=device)
        to_outputs = (pointers, torch.empty_like(flat).scatter_(0, slot, numbered))
        if with_inputs:
            per_input = torch.bincount(inputs, minlength=n_in)
            pointers = _csr_pointers(per_input)
            if int(per_input.max()) > 1:
                by_input = torch.argsort(inputs, stable=True)
            else:  # each input feeds at most one pair (kernel == stride)
                slot = pointers.index_select(0, inputs)
                by_input = torch.empty_like(flat).scatter_(0, slot, numbered)
            to_inputs = (pointers, by_input)
    return Rulebook(
        n_in,
        n_out,
        taps[centre] if centre >= 0 else -1,
        [taps[r] for r in kept],
        bounds,
        inputs,
        outputs,
        to_outputs,
        to_inputs,
    )


def submanifold_rulebook(x: SparseTensor, kernel_size: tuple[int, ...]) -> Rulebook:
    """Rulebook of a submanifold convolution (output sites = input sites), cached on ``x``.

    Tap ``k`` (row-major over the centred window) pairs site ``i`` with output ``j`` when
    ``coords[i] = coords[j] + offset_k``.
    """
    entry = ("subm", kernel_size)
    if entry not in x._cache:
        radius = tuple(k // 2 for k in kernel_size)
        keys, order = _sorted_keys(x, radius)
        n = keys.numel() - 2
        extents = [s + 2 * r for s, r in zip(x.spatial_shape, radius, strict=True)]
        strides = _row_major_strides(extents)
        if order is None and keys.device.type == "cpu":  # raster order: one compiled pass
            x._cache[entry] = _compiled_rulebook(keys[1 : n + 1], kernel_size, strides)
            return x._cache[entry]
        candidates, found, taps, centre = _neighbour_candidates(keys, kernel_size, strides)
        shift = -1
        if order is not None:  # sorted positions -> rows of x (index -1 wraps to the sentinel n)
            rows = torch.cat([order, order.new_full((1,), n)])
            candidates = torch.empty_like(candidates).index_copy_(1, order, rows[candidates - 1])
            found = torch.empty_like(found).index_copy_(1, order, found)
            shift = 0
        x._cache[entry] = _pairs(candidates, found, n, taps, centre, False, shift)
    return x._cache[entry]


def _tap_order(kernel: Sequence[int]) -> tuple[list[int], int]:
    """The taps in the order :func:`_neighbour_candidates` and the compiled pass lay out their
    rows (all but the centre), and the centre tap.

    Searched runs step-major, their mirror images, the centre run outwards (down, up per step).
    """
    run, radius = kernel[-1], kernel[-1] // 2
    middle = math.prod(kernel[:-1]) // 2
    searched = [i * run + step for step in range(run) for i in range(middle)]
    last, centre = math.prod(kernel) - 1, middle * run + radius
    outward = [tap for step in range(1, radius + 1) for tap in (centre - step, centre + step)]
    return [*searched, *(last - tap for tap in searched), *outward], centre


def _compiled_rulebook(sites: Tensor, kernel: Sequence[int], strides: Sequence[int]) -> Rulebook:
    """:func:`submanifold_rulebook` of sorted keys through one compiled pass
    (:func:`~convsuite.core_ops.layers.sparse.kernels.submanifold_pairs`): the same rulebook as
    the tensor path, pair for pair."""
    from convsuite.core_ops.layers.sparse.kernels import submanifold_pairs  # numba: lazily

    taps, centre = _tap_order(kernel)
    window = itertools.product(*(range(k) for k in kernel))
    offsets = [
        sum((w - k // 2) * s for w, k, s in zip(tap, kernel, strides, strict=True))
        for tap in window
    ]
    starts, inputs, outputs, crow, col = submanifold_pairs(
        sites.numpy(), np.asarray(offsets, np.int64), np.asarray(taps, np.int64), kernel[-1]
    )
    ends = starts.tolist()
    kept = [r for r in range(len(taps)) if ends[r + 1] > ends[r]]
    n, pairs = sites.numel(), int(ends[-1])
    to_outputs = None
    if pairs >= max(CSR_MIN_PAIRS, 1):
        to_outputs = (torch.from_numpy(crow), torch.from_numpy(col))
    return Rulebook(
        n,
        n,
        centre,
        [taps[r] for r in kept],
        [0] + [ends[r + 1] for r in kept],
        torch.from_numpy(inputs),
        torch.from_numpy(outputs),
        to_outputs,
        None,
    )


@dataclass
class WindowMap:
    """Where each input site lands in a ``kernel == stride`` downsampling (non-overlapping windows).

    Attributes:
        out: the (M, 1 + D) output sites in raster order, (M, 0) features, a cache of its own.
        out_rows: (N',) the output row of each used input site.
        taps: (N',) its position in the window, row-major over the window (first axis slowest).
        sources: (N',) the used input rows, or None when every input row is used, in order
            (sites in a partial window at the grid's far edge are dropped, as by a dense conv).
    """

    out: SparseTensor
    out_rows: Tensor
    taps: Tensor
    sources: Tensor | None


def _unique_sites_in_raster_order(x: SparseTensor) -> bool:
    """Whether the coordinate rows are in raster order (cached on ``x``); raises on duplicate
    rows (one O(N) compare when the rows are in raster order, a sort otherwise)."""
    entry = ("unique",)
    if entry not in x._cache:
        if math.prod([max(x.batch_size, 1), *x.spatial_shape]) >= _MAX_KEY:
            raise ValueError(f"grid {[x.batch_size, *x.spatial_shape]} is too large for int64 keys")
        raster = _compiled_keys(x, x.spatial_shape) is not None
        if raster:  # strictly ascending: distinct, no further check
            x._cache[entry] = raster
            return raster
        keys = _linear_keys(x.coords, x.spatial_shape)
        raster = bool((keys[1:] > keys[:-1]).all())
        if not raster:
            keys = torch.sort(keys).values
            if bool((keys[1:] == keys[:-1]).any()):
                raise ValueError("coords has duplicate rows: each active site must appear once")
        x._cache[entry] = raster
    return x._cache[entry]


def window_map(x: SparseTensor, stride: tuple[int, ...]) -> WindowMap:
    """The :class:`WindowMap` of a ``kernel == stride`` downsampling, cached on ``x``.

    Column arithmetic (shifts and masks for powers of two) and one ``torch.unique`` over the N
    window keys: O(N log N) whatever the window volume K (no (K, M) table).
    """
    entry = ("window", stride)
    if entry in x._cache:
        return x._cache[entry]
    out_shape = tuple(s // k for s, k in zip(x.spatial_shape, stride, strict=True))
    if min(out_shape) < 1:
        raise ValueError(f"spatial_shape {x.spatial_shape} is smaller than kernel {stride}")
    if _unique_sites_in_raster_order(x) and x.coords.device.type == "cpu":  # raster order: compiled
        x._cache[entry] = _compiled_window_map(x, stride, out_shape)
        return x._cache[entry]
    out_keys, taps, inside = x.coords[:, 0], None, None
    for axis, (k, size) in enumerate(zip(stride, out_shape, strict=True)):
        column = x.coords[:, 1 + axis]
        if k & (k - 1) == 0:  # power of two: shift and mask
            cell, offset = column >> (k.bit_length() - 1), column & (k - 1)
        else:
            cell = torch.div(column, k, rounding_mode="floor")
            offset = column - cell * k
        if x.spatial_shape[axis] % k:  # a partial window at the far edge is dropped
            fits = cell < size
            inside = fits if inside is None else inside & fits
        out_keys = out_keys * size + cell
        taps = offset if taps is None else taps * k + offset
    assert taps is not None
    sources = None
    if inside is not None and not bool(inside.all()):
        sources = inside.nonzero()[:, 0]
        out_keys, taps = out_keys[sources], taps[sources]
    unique_keys, out_rows = torch.unique(out_keys, sorted=True, return_inverse=True)
    m = unique_keys.numel()
    out = SparseTensor._trusted(
        _decode_keys(unique_keys, out_shape), x.feats.new_zeros(m, 0), out_shape, x.batch_size, {}
    )
    x._cache[entry] = WindowMap(out, out_rows, taps, sources)
    return x._cache[entry]


def _compiled_window_map(
    x: SparseTensor, stride: tuple[int, ...], out_shape: tuple[int, ...]
) -> WindowMap:
    """:func:`window_map` of sites in raster order through one compiled pass
    (:func:`~convsuite.core_ops.layers.sparse.kernels.window_sites`): the same map."""
    from convsuite.core_ops.layers.sparse.kernels import window_sites  # numba: lazily

    keys, out_rows, taps, used = window_sites(
        np.ascontiguousarray(x.coords.numpy()),
        np.asarray(stride, np.int64),
        np.asarray(out_shape, np.int64),
    )
    sources = None
    if not used.all():
        sources = torch.from_numpy(np.flatnonzero(used))
        out_rows, taps = out_rows[used], taps[used]
    unique_keys = torch.from_numpy(keys)
    m = unique_keys.numel()
    out = SparseTensor._trusted(
        _decode_keys(unique_keys, out_shape), x.feats.new_zeros(m, 0), out_shape, x.batch_size, {}
    )
    return WindowMap(out, torch.from_numpy(out_rows), torch.from_numpy(taps), sources)


def window_rulebook(x: SparseTensor, stride: tuple[int, ...]) -> tuple[SparseTensor, Rulebook]:
    """Output sites and :class:`Rulebook` of a ``kernel == stride`` convolution, cached on ``x``.

    From :func:`window_map` and one sort of the N pair keys (tap, output row): no (K, M) table;
    every input feeds at most one pair.
    """
    entry = ("window rulebook", stride)
    if entry not in x._cache:
        windows = window_map(x, stride)
        rulebook = _window_rulebook(windows, x.coords.shape[0], math.prod(stride))
        x._cache[entry] = (windows.out, rulebook)
    return x._cache[entry]


def _order_of_unique(keys: Tensor, size: int) -> Tensor:
    """The permutation that sorts ``keys`` (distinct, in ``[0, size)``), like ``argsort``.

    When ``size`` is within a small multiple of the number of keys, a scatter into a ``size``
    table and one ``nonzero`` (O(size), no comparison sort: ``torch.sort`` of int64 keys was the
    largest cost of a small strided layer); otherwise ``argsort``.
    """
    if size > 16 * keys.numel() + 4096:
        return torch.argsort(keys)
    table = torch.full((size,), -1, dtype=torch.int64, device=keys.device)
    table.scatter_(0, keys, torch.arange(keys.numel(), device=keys.device))
    return table.index_select(0, (table >= 0).nonzero()[:, 0])


def _window_rulebook(windows: WindowMap, n_in: int, volume: int) -> Rulebook:
    m, device = windows.out.coords.shape[0], windows.taps.device
    by_output = None
    if device.type == "cpu":  # two counting sorts, compiled
        from convsuite.core_ops.layers.sparse.kernels import window_orders  # numba: lazily

        order, by_output = (
            torch.from_numpy(a)
            for a in window_orders(windows.out_rows.numpy(), windows.taps.numpy(), m, volume)
        )
    else:
        order = _order_of_unique(windows.taps * max(m, 1) + windows.out_rows, volume * max(m, 1))
    inputs = order if windows.sources is None else windows.sources.index_select(0, order)
    outputs = windows.out_rows.index_select(0, order)
    pair_taps = windows.taps.index_select(0, order)
    ends = torch.cumsum(torch.bincount(pair_taps, minlength=volume), 0).tolist()
    taps = [t for t in range(volume) if ends[t] > (ends[t - 1] if t else 0)]
    bounds = [0] + [ends[t] for t in taps]
    to_outputs = to_inputs = None
    pairs = inputs.numel()
    if pairs >= max(CSR_MIN_PAIRS, 1):
        numbered = torch.arange(pairs, device=device)
        if by_output is None:
            by_output = _order_of_unique(outputs * volume + pair_taps, volume * max(m, 1))
        to_outputs = (_csr_pointers(torch.bincount(outputs, minlength=m)), by_output)
        pointers = _csr_pointers(torch.bincount(inputs, minlength=n_in))
        by_input = torch.empty_like(inputs).scatter_(0, pointers.index_select(0, inputs), numbered)
        to_inputs = (pointers, by_input)
    return Rulebook(n_in, m, -1, taps, bounds, inputs, outputs, to_outputs, to_inputs)


def downsample_rulebook(
    x: SparseTensor, kernel_size: tuple[int, ...], stride: tuple[int, ...]
) -> tuple[SparseTensor, Rulebook, Tensor]:
    """Output sites and rulebook of a strided convolution or pooling, cached on ``x``.

    Output site ``o`` is active when its window ``o * stride + [0, kernel)`` holds an active input
    site; the output grid is ``(S - kernel) // stride + 1`` per axis (no padding), as
    ``torch.nn.functional.conv2d``. With ``kernel == stride`` the output sites are the distinct
    ``coords // stride``.

    Returns:
        ``(out, rulebook, table)``: ``out`` holds the (M, 1 + D) output coordinates in raster order
        with (M, 0) features and a cache of its own, shared by every layer that makes it;
        ``table`` (K, M) is the input row at each window tap, N where inactive (for pooling).
    """
    entry = ("down", kernel_size, stride)
    if entry in x._cache:
        return x._cache[entry]
    out_shape = tuple(
        (s - k) // t + 1 for s, k, t in zip(x.spatial_shape, kernel_size, stride, strict=True)
    )
    if min(out_shape) < 1:
        raise ValueError(f"spatial_shape {x.spatial_shape} is smaller than kernel {kernel_size}")
    device, n = x.coords.device, x.coords.shape[0]
    volume = math.prod(kernel_size)
    if kernel_size == stride:  # each site feeds one window: column arithmetic, no search
        windows = window_map(x, stride)
        out, rulebook = window_rulebook(x, stride)
        m = out.coords.shape[0]
        table = torch.full((volume, m), n, dtype=torch.int64, device=device)  # tap-major
        sources = windows.sources
        if sources is None:
            sources = torch.arange(n, device=device)
        table.view(-1).scatter_(0, windows.taps * m + windows.out_rows, sources)
        x._cache[entry] = (out, rulebook, table)
        return x._cache[entry]
    grid = x.coords[:, 1:]
    step = torch.tensor(stride, device=device)
    window = torch.stack(
        torch.meshgrid(*(torch.arange(k, device=device) for k in kernel_size), indexing="ij"),
        -1,
    ).reshape(-1, len(kernel_size))
    start = grid[:, None, :] - window  # (N, K, D): window origins o * stride
    cell = torch.div(start, step, rounding_mode="floor")
    limit = torch.tensor(out_shape, device=device)
    fits = ((cell * step == start) & (cell >= 0) & (cell < limit)).all(-1)
    rows, taps = fits.nonzero().unbind(1)
    out_keys = _linear_keys(torch.cat([x.coords[rows, :1], cell[rows, taps]], 1), out_shape)
    unique_keys, out_rows = torch.unique(out_keys, sorted=True, return_inverse=True)
    m = unique_keys.numel()
    table = torch.full((volume, m), n, dtype=torch.int64, device=device)  # tap-major
    table.view(-1).scatter_(0, taps * m + out_rows, rows)
    rulebook = _pairs(table, table != n, n, list(range(volume)), -1, True)
    if rulebook.num_pairs != rows.numel():  # two sites claimed one (output, tap) slot
        raise ValueError("coords has duplicate rows: each active site must appear once")
    out = SparseTensor._trusted(
        _decode_keys(unique_keys, out_shape), x.feats.new_zeros(m, 0), out_shape, x.batch_size, {}
    )
    x._cache[entry] = (out, rulebook, table)
    return x._cache[entry]
