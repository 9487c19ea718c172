"""Per-pixel anomaly scores shared by the VAE and the baselines, and the Otsu threshold.

The score of a pixel is 1 - Pearson correlation between its own (preprocessed) spectrum and its
reconstruction inside an energy window given in eV on the calibrated axis (default the Fe L2,3
window, 690-730 eV), as in the reference; pixels above the Otsu threshold of the score map are
flagged.
"""

from __future__ import annotations

import numpy as np

from convsuite.core_ops.errors import InputError

__all__ = ["DEFAULT_WINDOW_EV", "otsu_threshold", "pearson_distance", "window_channels"]

DEFAULT_WINDOW_EV = (690.0, 730.0)


def window_channels(energies: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Boolean (E,) selection of the grid channels inside ``window`` (eV, inclusive).

    Raises:
        InputError: the window is empty, outside the grid, or holds fewer than 3 channels.
    """
    low, high = float(window[0]), float(window[1])
    if not high > low:
        raise InputError("--window", f"energy window {low:g}-{high:g} eV is empty")
    step = float(energies[1] - energies[0]) if energies.size > 1 else 0.0
    if low < energies[0] - 1e-6 - step / 2 or high > energies[-1] + 1e-6 + step / 2:
        raise InputError(
            "--window",
            f"energy window {low:g}-{high:g} eV is outside the network's energy grid "
            f"({energies[0]:g}-{energies[-1]:g} eV)",
        )
    selected = (energies >= low - 1e-9) & (energies <= high + 1e-9)
    if selected.sum() < 3:
        raise InputError("--window", f"energy window {low:g}-{high:g} eV holds under 3 channels")
    return selected


def pearson_distance(
    own: np.ndarray, reconstruction: np.ndarray, channels: np.ndarray
) -> np.ndarray:
    """1 - Pearson r between spectra over ``channels``: (..., E), (..., E) -> (...,) float32.

    A flat spectrum (zero variance) scores 1 (no correlation).
    """
    a = own[..., channels].astype(np.float64)
    b = reconstruction[..., channels].astype(np.float64)
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean(axis=-1, keepdims=True)
    denominator = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    r = np.divide(
        (a * b).sum(-1), denominator, out=np.zeros(denominator.shape), where=denominator > 0
    )
    return (1.0 - r).astype(np.float32)


def otsu_threshold(scores: np.ndarray) -> float:
    """Otsu's threshold of a score map (scikit-image); +inf when all scores are equal."""
    from skimage.filters import threshold_otsu

    values = np.asarray(scores, dtype=np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0 or values.min() == values.max():
        return float("inf")
    return float(threshold_otsu(values, nbins=512))
