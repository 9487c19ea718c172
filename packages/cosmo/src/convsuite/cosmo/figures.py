"""Figures of an inpainting: Mollweide views of input, output and residual, and power spectra."""

from __future__ import annotations

import os
from pathlib import Path

import healpy as hp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from convsuite.core_ops.io import atomic_path  # noqa: E402
from convsuite.cosmo.metrics import (  # noqa: E402
    binned_spectrum,
    cosmic_variance_band,
    power_spectrum,
)

__all__ = ["plot_maps", "plot_spectra"]


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_maps(
    data: np.ndarray,
    observed: np.ndarray,
    inpainted: np.ndarray,
    path: str | os.PathLike[str],
    truth: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Mollweide views (NESTED maps, muK): input with its holes grey, output, residual if truth."""
    views = [
        (np.where(observed, data, hp.UNSEEN), f"{title} input".strip()),
        (inpainted, "inpainted"),
    ]
    if truth is not None:
        views.append((np.where(observed, hp.UNSEEN, inpainted - truth), "residual in holes"))
    fig = plt.figure(figsize=(5.5 * len(views), 3.6))
    limit = float(np.percentile(np.abs(inpainted), 99.5)) or 1.0
    for panel, (sky, name) in enumerate(views, start=1):
        hp.mollview(
            sky,
            nest=True,
            fig=fig.number,
            sub=(1, len(views), panel),
            title=name,
            unit="muK",
            min=-limit,
            max=limit,
            cmap="RdBu_r",
        )
    return _save(fig, Path(path))


def plot_spectra(
    spectra: dict[str, np.ndarray],
    path: str | os.PathLike[str],
    reference: np.ndarray | None = None,
    delta_ell: int = 10,
) -> Path:
    """D_ell = l (l + 1) C_l / 2 pi of each full-sky NESTED map, binned; cosmic-variance band
    around ``reference`` (the truth's C_ell, or the input's when no truth is known)."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    if reference is not None:
        ell, cl, band = cosmic_variance_band(reference, delta_ell)
        factor = ell * (ell + 1) / (2 * np.pi)
        ax.fill_between(
            ell, factor * (cl - band), factor * (cl + band), color="0.8", label="cosmic variance"
        )
    for name, sky in spectra.items():
        ell, cl = binned_spectrum(power_spectrum(sky), delta_ell)
        ax.plot(ell, ell * (ell + 1) / (2 * np.pi) * cl, label=name, lw=1.2)
    ax.set_xlabel(r"$\ell$")
    ax.set_ylabel(r"$D_\ell$ [$\mu$K$^2$]")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))
