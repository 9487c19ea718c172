"""Figures of an inpainting: Mollweide views of input, output and residual, and power spectra.

Each function returns a :class:`matplotlib.figure.Figure` (no pyplot, no backend chosen): a notebook
shows it inline, the CLI and the demo write it with :func:`convsuite.core_ops.figures.save_figure`.
The Mollweide images come from healpy's projector (``healpy.projector.MollweideProj``), drawn with
``imshow``: ``healpy.mollview`` would need pyplot's global figures.
"""

from __future__ import annotations

import healpy as hp
import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from convsuite.core_ops.figures import new_figure
from convsuite.cosmo.metrics import binned_spectrum, cosmic_variance_band, power_spectrum

__all__ = ["plot_maps", "plot_spectra"]

_WIDTH_PIXELS = 800  # Mollweide image width


def _mollweide(ax: Axes, values: np.ndarray, title: str, limit: float) -> AxesImage:
    """Draw a NESTED map in Mollweide projection on ``ax``, NaN pixels grey; returns the image."""
    nside = hp.npix2nside(values.size)
    projector = hp.projector.MollweideProj(xsize=_WIDTH_PIXELS)
    image = projector.projmap(values, lambda x, y, z: hp.vec2pix(nside, x, y, z, nest=True))
    outside = np.isneginf(image)  # beyond the ellipse: transparent
    drawn = ax.imshow(
        np.ma.masked_invalid(np.where(outside, np.nan, image)),
        extent=projector.get_extent(),
        origin="lower",
        cmap=matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.75"),
        vmin=-limit,
        vmax=limit,
        alpha=(~outside).astype(np.float64),
        interpolation="nearest",
    )
    ax.set_title(title)
    ax.set_axis_off()
    return drawn


def plot_maps(
    data: np.ndarray,
    observed: np.ndarray,
    inpainted: np.ndarray,
    truth: np.ndarray | None = None,
    title: str = "",
) -> Figure:
    """Mollweide views of NESTED maps in muK: the input with its holes grey, the inpainted map and,
    with ``truth``, the residual in the holes.

    Args:
        data: (12 N^2,) the observed map (hole values ignored).
        observed: (12 N^2,) bool.
        inpainted: (12 N^2,) the filled map.
        truth: (12 N^2,) the full sky, or None.
        title: prefix of the first panel's title.
    """
    views = [
        (np.where(observed, data, np.nan), f"{title} input".strip()),
        (np.asarray(inpainted, dtype=np.float64), "inpainted"),
    ]
    if truth is not None:
        views.append((np.where(observed, np.nan, inpainted - truth), "residual in holes"))
    figure = new_figure(figsize=(5.5 * len(views), 3.4))
    limit = float(np.percentile(np.abs(inpainted), 99.5)) or 1.0
    axes = figure.subplots(1, len(views), squeeze=False)[0]
    for ax, (values, name) in zip(axes, views, strict=True):
        image = _mollweide(ax, values, name, limit)
    figure.colorbar(image, ax=list(axes), orientation="horizontal", shrink=0.5, label="μK")
    return figure


def plot_spectra(
    spectra: dict[str, np.ndarray],
    reference: np.ndarray | None = None,
    delta_ell: int = 10,
    curves: dict[str, np.ndarray] | None = None,
) -> Figure:
    """D_ell = l (l + 1) C_l / 2 pi of each full-sky NESTED map, binned; cosmic-variance band
    around ``reference`` (the truth's C_ell, or the input's when no truth is known), and below,
    each spectrum over the reference (where the beam has taken the spectrum down by orders of
    magnitude, the top panel shows nothing and the ratio shows everything).

    Args:
        spectra: name -> (12 N^2,) NESTED map in muK.
        reference: (3 N,) C_ell in muK^2 (:func:`~convsuite.cosmo.metrics.power_spectrum`) that
            gives the band and the ratio; None: neither.
        delta_ell: bin width in ell.
        curves: name -> (3 N,) C_ell in muK^2 drawn dashed as they are (e.g. the prior the
            pipeline measured from the map, :class:`~convsuite.cosmo.spectrum.MapPrior`).
    """
    rows = 2 if reference is not None else 1
    figure = new_figure(figsize=(7, 3.0 + 2.2 * (rows - 1)))
    axes = figure.subplots(
        rows, 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": [3, 2][:rows]}
    )[:, 0]
    top = axes[0]
    if reference is not None:
        ell, cl, band = cosmic_variance_band(reference, delta_ell)
        factor = ell * (ell + 1) / (2 * np.pi)
        top.fill_between(
            ell, factor * (cl - band), factor * (cl + band), color="0.8", label="cosmic variance"
        )
        axes[1].fill_between(ell, 1 - band / cl, 1 + band / cl, color="0.8")
        axes[1].axhline(1.0, color="0.4", lw=0.8)
        axes[1].set_ylabel("ratio to reference")
    for name, sky in spectra.items():
        ell, binned = binned_spectrum(power_spectrum(sky), delta_ell)
        line = top.plot(ell, ell * (ell + 1) / (2 * np.pi) * binned, label=name, lw=1.2)[0]
        if reference is not None:
            axes[1].plot(ell, binned / cl, lw=1.0, color=line.get_color())
    for name, cl_curve in (curves or {}).items():
        ell, binned = binned_spectrum(np.asarray(cl_curve, dtype=np.float64), delta_ell)
        line = top.plot(ell, ell * (ell + 1) / (2 * np.pi) * binned, "--", label=name, lw=1.2)[0]
        if reference is not None:
            axes[1].plot(ell, binned / cl, "--", lw=1.0, color=line.get_color())
    axes[-1].set_xlabel(r"$\ell$")
    top.set_ylabel(r"$D_\ell$ [$\mu$K$^2$]")
    top.legend(fontsize=8)
    return figure
