"""Changing a NESTED map's resolution without healpy's bad-pixel bookkeeping."""

from __future__ import annotations

import healpy as hp
import numpy as np

__all__ = ["ud_grade_nest"]


def ud_grade_nest(values: np.ndarray, nside: int) -> np.ndarray:
    """``healpy.ud_grade(values, nside, order_in="NESTED", order_out="NESTED")`` of a finite
    map, float64: degrading, each coarse pixel the mean of its sub-pixels.

    Bit-identical to healpy's on a map without UNSEEN or non-finite pixels (the same row sums
    and division), without its bad-pixel masks when degrading: 1.3 s of the 1.4 s a call took
    at Nside 2048 (a float64 product and two boolean maps).
    """
    values = np.asarray(values, dtype=np.float64)
    ratio = values.size // (12 * nside * nside)
    if ratio <= 1:  # upgrading (nearest: a reshape) or the same Nside
        return hp.ud_grade(values, nside, order_in="NESTED", order_out="NESTED")
    return values.reshape(-1, ratio).sum(axis=1) / ratio
