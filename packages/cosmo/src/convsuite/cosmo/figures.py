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
    around ``reference`` (the truth's C_ell, or the input's when no truth is known), and below,
    each spectrum over the reference (where the beam has taken the spectrum down by orders of
    magnitude, the top panel shows nothing and the ratio shows everything)."""
    rows = 2 if reference is not None else 1
    fig, axes = plt.subplots(
        rows,
        1,
        figsize=(7, 3.0 + 2.2 * (rows - 1)),
        sharex=True,
        squeeze=False,
        gridspec_kw={"height_ratios": [3, 2][:rows]},
    )
    top = axes[0, 0]
    if reference is not None:
        ell, cl, band = cosmic_variance_band(reference, delta_ell)
        factor = ell * (ell + 1) / (2 * np.pi)
        top.fill_between(
            ell, factor * (cl - band), factor * (cl + band), color="0.8", label="cosmic variance"
        )
        axes[1, 0].fill_between(ell, 1 - band / cl, 1 + band / cl, color="0.8")
        axes[1, 0].axhline(1.0, color="0.4", lw=0.8)
        axes[1, 0].set_ylabel("ratio to reference")
    for name, sky in spectra.items():
        ell, binned = binned_spectrum(power_spectrum(sky), delta_ell)
        line = top.plot(ell, ell * (ell + 1) / (2 * np.pi) * binned, label=name, lw=1.2)[0]
        if reference is not None:
            axes[1, 0].plot(ell, binned / cl, lw=1.0, color=line.get_color())
    axes[-1, 0].set_xlabel(r"$\ell$")
    top.set_ylabel(r"$D_\ell$ [$\mu$K$^2$]")
    top.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, Path(path))
