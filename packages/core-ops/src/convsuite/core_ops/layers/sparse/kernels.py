"""A submanifold rulebook in one compiled pass (numba) for sites in raster order.

The vectorised torch path (:func:`~convsuite.core_ops.layers.sparse.rulebook._neighbour_candidates`
and ``_pairs``) runs some forty tensor operations per rulebook, each a pass over memory and a
dispatch; at 2k-20k sites those fixed costs were as large as the convolution itself. Here one
loop over the sorted sites walks one pointer per tap (the neighbours at a fixed offset of sorted
keys are themselves sorted, so each pointer only moves forward: O(N * K) in all), and a second
loop writes the pairs grouped by tap and the CSR index by output row. Taps are visited in the
torch path's order, so the rulebook is the same, pair for pair (tests), and so are the sums.

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
