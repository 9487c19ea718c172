"""Figures are matplotlib Figure objects, outside pyplot, saved by core-ops' save_figure."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from convsuite.core_ops.figures import save_figure
from convsuite.cosmo.baselines import diffusive_inpaint
from convsuite.cosmo.data import simulate_sky
from convsuite.cosmo.figures import plot_maps, plot_spectra
from convsuite.cosmo.metrics import power_spectrum


def test_maps_and_spectra_are_figures_pyplot_does_not_hold(tmp_path: Path) -> None:
    sky = simulate_sky(16, 0)
    filled = diffusive_inpaint(sky.masked, sky.observed)
    before = plt.get_fignums()
    maps = plot_maps(sky.masked, sky.observed, filled, sky.truth, "Nside 16")
    spectra = plot_spectra({"diffusive": filled, "truth": sky.truth}, power_spectrum(sky.truth))
    assert isinstance(maps, Figure) and isinstance(spectra, Figure)
    assert plt.get_fignums() == before  # built with the object API, not pyplot's registry
    titles = [ax.get_title() for ax in maps.axes]
    assert titles[:3] == ["Nside 16 input", "inpainted", "residual in holes"]
    image = maps.axes[0].images[0].get_array()
    # the holes are drawn as 'bad' (grey) pixels, the observed sky as values in the colour range
    assert 0.1 < np.ma.getmaskarray(image).mean() < 0.6
    assert len(plot_maps(sky.masked, sky.observed, filled).axes) == 3  # 2 panels + colour bar
    top, ratio = spectra.axes
    assert [line.get_label() for line in top.lines] == ["diffusive", "truth"]
    truth_ratio = ratio.lines[-1].get_ydata()
    np.testing.assert_allclose(truth_ratio, 1.0, rtol=1e-12)  # the truth over its own spectrum
    path = save_figure(spectra, tmp_path / "spectra.png")
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (840, 624)  # 7 x 5.2 inches at 120 dpi
