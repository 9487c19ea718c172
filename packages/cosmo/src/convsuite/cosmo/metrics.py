"""How good an inpainted sky is: pixels in the holes, SSIM on the faces, and the power spectrum.

* :func:`ssim_map`: SSIM (Wang et al. 2004: 11 x 11 Gaussian window, sigma 1.5 pixels,
  K1 = 0.01, K2 = 0.03) computed on the HEALPix faces with the windows padded across face edges
  (so SSIM has no seams either). ``data_range`` is fixed by the caller (a CMB map has no natural
  maximum): 800 muK (+-400 muK) throughout this package.
* :func:`power_spectrum`: ``healpy.anafast`` (iter=0) of the full sky, ell <= 3 nside - 1.
* :func:`cosmic_variance_fraction`: the spectrum binned by ``delta_ell`` (from ell = 2) against
  the true map's; a bin is inside when the difference is within the cosmic-variance band
  ``sqrt(2 / (2 l + 1)) C_l`` of the true spectrum, binned like the spectra (the band of the
  issue's target). ``per_bin=True`` uses the standard deviation of the bin average instead,
  ``sqrt(sum_l 2 C_l^2 / (2 l + 1)) / delta_ell``: narrower by about ``sqrt(delta_ell)``, a
  stricter test that even a perfect posterior sample passes in only part of the bins (its holes
  are an independent draw).
"""

from __future__ import annotations

from collections.abc import Callable

import healpy as hp
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from convsuite.core_ops.layers import HEALPixPad, faces_from_nest

__all__ = [
    "DATA_RANGE_UK",
    "binned_spectrum",
    "cosmic_variance_band",
    "cosmic_variance_fraction",
    "hole_correlation",
    "hole_mse",
    "hole_power_ratio",
    "hole_ssim",
    "power_spectrum",
    "ssim_map",
]

DATA_RANGE_UK = 800.0


def _gaussian_window(
    size: int = 11, sigma: float = 1.5, dtype: torch.dtype = torch.float32
) -> Tensor:
    offsets = torch.arange(size, dtype=dtype) - (size - 1) / 2
    profile = torch.exp(-(offsets**2) / (2 * sigma**2))
    profile = profile / profile.sum()
    return (profile[:, None] * profile[None, :])[None, None]


def ssim_map(
    x: Tensor,
    y: Tensor,
    data_range: float,
    pad: Callable[[Tensor], Tensor] | None = None,
    window: int = 11,
    sigma: float = 1.5,
) -> Tensor:
    """Per-pixel SSIM of two image stacks.

    Args:
        x, y: (N, 1, n, n) images (HEALPix face stacks: N = 12 B).
        data_range: L of the SSIM constants (C1 = (0.01 L)^2, C2 = (0.03 L)^2).
        pad: pads (N, C, n, n) by ``window // 2`` on each side; default: HEALPix face padding.
        window, sigma: the Gaussian window.

    Returns:
        (N, 1, n, n) SSIM, 1 where the images agree.
    """
    pad = pad or HEALPixPad(window // 2)
    kernel = _gaussian_window(window, sigma, x.dtype).to(x.device)
    stats = pad(torch.cat([x, y, x * x, y * y, x * y], 1))
    n = x.shape[0]
    blurred = F.conv2d(stats.reshape(n * 5, 1, *stats.shape[-2:]), kernel).reshape(
        n, 5, *x.shape[-2:]
    )
    mu_x, mu_y, xx, yy, xy = blurred.unbind(1)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    ssim = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    return ssim[:, None]


def _faces(maps: Tensor) -> Tensor:
    """(B, 12 n^2) NESTED -> (12 B, 1, n, n)."""
    faces = faces_from_nest(maps)
    return faces.reshape(-1, 1, *faces.shape[-2:])


def hole_ssim(
    prediction: Tensor, truth: Tensor, observed: Tensor, data_range: float = DATA_RANGE_UK
) -> Tensor:
    """Mean SSIM over the holes, (B,): maps (B, 12 n^2) NESTED in muK, ``observed`` bool."""
    ssim = ssim_map(_faces(prediction), _faces(truth), data_range)
    holes = _faces((~observed.bool()).to(prediction.dtype))
    batch = prediction.shape[0]
    total = (ssim * holes).reshape(batch, -1).sum(1)
    return total / holes.reshape(batch, -1).sum(1).clamp_min(1)


def hole_mse(prediction: np.ndarray, truth: np.ndarray, observed: np.ndarray) -> float:
    """Mean squared error over the holes, muK^2."""
    holes = ~np.asarray(observed, dtype=bool)
    return float(np.mean((np.asarray(prediction) - np.asarray(truth))[holes] ** 2))


def hole_power_ratio(prediction: np.ndarray, truth: np.ndarray, observed: np.ndarray) -> float:
    """The fill's power in the holes over the truth's: mean square over the hole pixels, each
    less its mean there (1: the right power; a mean fill has less)."""
    holes = ~np.asarray(observed, dtype=bool)
    return float(np.var(np.asarray(prediction)[holes]) / np.var(np.asarray(truth)[holes]))


def hole_correlation(prediction: np.ndarray, truth: np.ndarray, observed: np.ndarray) -> float:
    """Pearson correlation of prediction and truth over the holes."""
    holes = ~np.asarray(observed, dtype=bool)
    return float(np.corrcoef(np.asarray(prediction)[holes], np.asarray(truth)[holes])[0, 1])


def power_spectrum(sky: np.ndarray) -> np.ndarray:
    """C_ell (ell = 0..3 nside - 1) of a full NESTED map, muK^2 (``anafast``, iter=0)."""
    ring = hp.reorder(np.asarray(sky, dtype=np.float64), n2r=True)
    return hp.anafast(ring, iter=0)


def _ell_bins(size: int, delta_ell: int, lmin: int) -> np.ndarray:
    """(bins, delta_ell) multipoles from ``lmin`` below ``size``; the last partial bin dropped."""
    ells = np.arange(lmin, size)
    bins = ells.size // delta_ell
    return ells[: bins * delta_ell].reshape(bins, delta_ell)


def binned_spectrum(
    cl: np.ndarray, delta_ell: int = 10, lmin: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres and mean C_ell in bins of ``delta_ell`` from ``lmin`` (last partial bin dropped)."""
    ells = _ell_bins(cl.size, delta_ell, lmin)
    return ells.mean(1), cl[ells].mean(1)


def cosmic_variance_band(
    cl_truth: np.ndarray, delta_ell: int = 10, lmin: int = 2, per_bin: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin centres, binned true C_ell and the cosmic-variance half-width (module doc)."""
    ells = _ell_bins(cl_truth.size, delta_ell, lmin)
    per_ell = 2 * cl_truth[ells] ** 2 / (2 * ells + 1)
    band = np.sqrt(per_ell.sum(1)) / delta_ell if per_bin else np.sqrt(per_ell).mean(1)
    return ells.mean(1), cl_truth[ells].mean(1), band


def cosmic_variance_fraction(
    cl: np.ndarray, cl_truth: np.ndarray, delta_ell: int = 10, lmin: int = 2, per_bin: bool = False
) -> float:
    """Fraction of ell bins where ``cl`` is within the cosmic variance of ``cl_truth`` (module doc)."""
    _, truth, band = cosmic_variance_band(cl_truth, delta_ell, lmin, per_bin)
    _, binned = binned_spectrum(cl, delta_ell, lmin)
    return float(np.mean(np.abs(binned - truth) <= band))
