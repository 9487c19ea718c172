"""Rulebooks of sites in raster order in compiled passes (numba): submanifold and k = s windows.

The vectorised torch path (:func:`~convsuite.core_ops.layers.sparse.rulebook._neighbour_candidates`
and ``_pairs``) runs some forty tensor operations per rulebook, each a pass over memory and a
dispatch; at 2k-20k sites those fixed costs were as large as the convolution itself. Here one
loop over the sorted sites walks one pointer per tap (the neighbours at a fixed offset of sorted
keys are themselves sorted, so each pointer only moves forward: O(N * K) in all), and a second
loop writes the pairs grouped by tap and the CSR index by output row. Taps are visited in the
torch path's order, so the rulebook is the same, pair for pair (tests), and so are the sums.
A ``kernel == stride`` window map numbers the output sites band by band (a band: one batch item
and first output cell, contiguous in raster order) instead of sorting all N keys, and its pair
orders come from counting sorts.

Below :data:`~convsuite.core_ops.layers.sparse.rulebook.CSR_MIN_PAIRS` pairs the pair rows are
gathered and their products summed into output rows by two serial loops here (:func:`take_rows`,
:func:`add_rows`) instead of ``index_select`` / ``index_add_``: at a few thousand pairs those
torch ops cost 10-100 us each in dispatch and thread-pool wake-ups, the loops a few us. The sums
are taken in the same order as ``index_add_``'s (pair by pair onto the base row), so the outputs
are the same.

numba compiles the kernel on first call (about a second, cached on disk with ``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def submanifold_pairs(
    keys: np.ndarray, offsets: np.ndarray, order: np.ndarray, run: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of a submanifold convolution over N sorted, distinct int64 ``keys``.

    Args:
        keys: (N,) sorted site keys.
        offsets: (K,) key offset of each weight tap (input key = output key + offset); taps come
            in runs of ``run`` along the last axis, consecutive taps one key apart.
        order: (R,) the taps to pair, in the order their pairs are laid out (the centre left out).
        run: the kernel's extent along the last axis.

    Returns:
        ``(starts, inputs, outputs, crow, col)``: pairs ``starts[r]:starts[r + 1]`` (R + 1,)
        belong to tap ``order[r]``; inputs, outputs (P,) sorted positions, within a tap by output;
        the CSR index (crow (N + 1,), col (P,)) that sums pairs into output rows: output j's pairs
        are ``col[crow[j]:crow[j + 1]]``, in the order of ``order``.
    """
    n, taps, rows = keys.size, order.size, offsets.size // run
    slot_of = np.full(offsets.size, -1, np.int64)
    for r in range(taps):
        slot_of[order[r]] = r
    neighbour = np.full((n, taps), -1, np.int64)
    counts = np.zeros(taps, np.int64)
    pointer = np.zeros(rows, np.int64)  # per run: the first key >= the run's first query
    for j in range(n):
        key = keys[j]
        for row in range(rows):
            query = key + offsets[row * run]
            p = pointer[row]
            while p < n and keys[p] < query:
                p += 1
            pointer[row] = p
            for step in range(run):  # the run's keys sit at consecutive sorted positions
                while p < n and keys[p] < query + step:
                    p += 1
                if p == n:
                    break
                r = slot_of[row * run + step]
                if r >= 0 and keys[p] == query + step:
                    neighbour[j, r] = p
                    counts[r] += 1
    starts = np.zeros(taps + 1, np.int64)
    for r in range(taps):
        starts[r + 1] = starts[r] + counts[r]
    pairs = starts[taps]
    inputs = np.empty(pairs, np.int64)
    outputs = np.empty(pairs, np.int64)
    crow = np.zeros(n + 1, np.int64)
    col = np.empty(pairs, np.int64)
    fill = starts[:taps].copy()
    c = 0
    for j in range(n):
        for r in range(taps):
            i = neighbour[j, r]
            if i >= 0:
                slot = fill[r]
                fill[r] += 1
                inputs[slot] = i
                outputs[slot] = j
                col[c] = slot
                c += 1
        crow[j + 1] = c
    return starts, inputs, outputs, crow, col


@numba.njit(cache=True)
def window_sites(
    coords: np.ndarray, stride: np.ndarray, out_shape: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Output windows of a ``kernel == stride`` downsampling of N sites in raster order.

    Sites with the same batch item and first output cell are contiguous in raster order (a
    band); within a band one stable sort of the remaining output cells numbers the windows, so
    the outputs come out in raster order without a sort of all N keys.

    Args:
        coords: (N, 1 + D) int64 sites in raster order, distinct.
        stride: (D,) window = stride per axis.
        out_shape: (D,) the output grid (a partial window at the far edge is dropped).

    Returns:
        ``(keys, out_rows, taps, used)``: keys (M,) the output sites' keys (row-major over
        (batch, *out_shape)), ascending; out_rows, taps (N,) each site's output row and position
        in its window (row-major, first axis slowest; -1 for a dropped site); used (N,) bool.
    """
    n, dims = coords.shape[0], stride.size
    cells = np.empty((n, dims), np.int64)
    taps = np.full(n, -1, np.int64)
    used = np.ones(n, np.bool_)
    for i in range(n):
        tap = 0
        for d in range(dims):
            cell = coords[i, 1 + d] // stride[d]
            cells[i, d] = cell
            tap = tap * stride[d] + coords[i, 1 + d] - cell * stride[d]
            if cell >= out_shape[d]:
                used[i] = False
        if used[i]:
            taps[i] = tap
    out_rows = np.full(n, -1, np.int64)
    keys = np.empty(n, np.int64)
    rest = np.empty(n, np.int64)  # each site's output cells after the first, as one key
    for i in range(n):
        key = 0
        for d in range(1, dims):
            key = key * out_shape[d] + cells[i, d]
        rest[i] = key
    index = np.empty(n, np.int64)
    m, lo = 0, 0
    while lo < n:
        hi = lo + 1
        while hi < n and coords[hi, 0] == coords[lo, 0] and cells[hi, 0] == cells[lo, 0]:
            hi += 1
        if hi - lo > 64:  # a long band: a library sort
            index[lo:hi] = lo + np.argsort(rest[lo:hi], kind="mergesort")
        else:  # a short one (the usual case): stable insertion sort, no allocation
            for i in range(lo, hi):
                k = i
                while k > lo and rest[index[k - 1]] > rest[i]:
                    index[k] = index[k - 1]
                    k -= 1
                index[k] = i
        band = coords[lo, 0] * out_shape[0] + cells[lo, 0]
        for d in range(1, dims):
            band *= out_shape[d]
        last = -1
        for k in range(lo, hi):
            i = index[k]
            if not used[i]:
                continue
            if rest[i] != last:
                last = rest[i]
                keys[m] = band + last
                m += 1
            out_rows[i] = m - 1
        lo = hi
    return keys[:m], out_rows, taps, used


@numba.njit(cache=True)
def window_orders(out_rows: np.ndarray, taps: np.ndarray, m: int, volume: int) -> tuple:
    """The two pair orders of a ``kernel == stride`` convolution, by counting sorts.

    Args:
        out_rows, taps: (N',) output row and window tap of each used input (input order);
            distinct (output, tap) pairs.
        m, volume: outputs, taps per window.

    Returns:
        ``(order, by_output)``: the used inputs sorted by (tap, output) (the pairs), and the
        pairs sorted by (output, tap): ``argsort`` of the two keys, without a comparison sort.
    """
    pairs = out_rows.size
    start = np.zeros(m + 1, np.int64)
    for p in range(pairs):
        start[out_rows[p] + 1] += 1
    for o in range(m):
        start[o + 1] += start[o]
    fill = start[:m].copy()
    by_out = np.empty(pairs, np.int64)
    for p in range(pairs):
        by_out[fill[out_rows[p]]] = p
        fill[out_rows[p]] += 1
    tap_fill = np.zeros(volume + 1, np.int64)
    for p in range(pairs):
        tap_fill[taps[p] + 1] += 1
    for t in range(volume):
        tap_fill[t + 1] += tap_fill[t]
    order = np.empty(pairs, np.int64)
    for q in range(pairs):  # stable by tap over inputs sorted by output: (tap, output)
        p = by_out[q]
        order[tap_fill[taps[p]]] = p
        tap_fill[taps[p]] += 1
    fill = start[:m].copy()
    by_output = np.empty(pairs, np.int64)
    for s in range(pairs):  # stable by output over pairs sorted by tap: (output, tap)
        o = out_rows[order[s]]
        by_output[fill[o]] = s
        fill[o] += 1
    return order, by_output


@numba.njit(cache=True)
def take_rows(rows: np.ndarray, index: np.ndarray) -> np.ndarray:
    """(P, C) ``rows[index]``: ``index_select`` along the first axis, in one serial loop.

    Args:
        rows: (N, C) C-contiguous.
        index: (P,) int64 rows of ``rows``, in range (trusted: a rulebook's).
    """
    out = np.empty((index.size, rows.shape[1]), rows.dtype)
    for p in range(index.size):
        out[p] = rows[index[p]]
    return out


@numba.njit(cache=True)
def add_rows(out: np.ndarray, index: np.ndarray, rows: np.ndarray) -> None:
    """``out[index[p]] += rows[p]`` for p = 0, 1, ... in place: ``index_add_`` along the first
    axis, summing in its order.

    Args:
        out: (M, C) C-contiguous, updated in place.
        index: (P,) int64 rows of ``out``, in range (trusted: a rulebook's).
        rows: (P, C) C-contiguous.
    """
    for p in range(index.size):
        target = out[index[p]]
        source = rows[p]
        for c in range(source.size):
            target[c] += source[c]


@numba.njit(cache=True)
def raster_keys(
    coords: np.ndarray, extents: np.ndarray, shift: int, sentinel: int
) -> tuple[np.ndarray, bool]:
    """Row-major int64 keys of (N, 1 + D) ``coords`` over (batch, *extents), plus ``shift``,
    between ``-sentinel`` and ``sentinel`` ((N + 2,)), and whether they strictly ascend (the sites
    are in raster order and distinct): the tensor path's keys, in one pass.
    """
    n, dims = coords.shape[0], extents.size
    keys = np.empty(n + 2, np.int64)
    keys[0], keys[n + 1] = -sentinel, sentinel
    ascending = True
    for i in range(n):
        key = coords[i, 0]
        for d in range(dims):
            key = key * extents[d] + coords[i, 1 + d]
        key += shift
        keys[i + 1] = key
        if i and key <= keys[i]:
            ascending = False
    return keys, ascending
