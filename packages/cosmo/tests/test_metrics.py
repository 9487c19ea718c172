"""SSIM on faces (checked against torchmetrics on flat images) and the spectrum metrics."""

from __future__ import annotations

import healpy as hp
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.image import structural_similarity_index_measure

from convsuite.cosmo.data import simulate_cmb
from convsuite.cosmo.metrics import (
    cosmic_variance_fraction,
    hole_correlation,
    hole_mse,
    hole_ssim,
    power_spectrum,
    ssim_map,
)


def test_ssim_matches_torchmetrics_away_from_borders() -> None:
    torch.manual_seed(0)
    x = torch.rand(2, 1, 48, 48, dtype=torch.float64)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    ours = ssim_map(x, y, 1.0, pad=lambda t: F.pad(t, (5, 5, 5, 5), mode="reflect"))
    _, full = structural_similarity_index_measure(
        y,
        x,
        data_range=1.0,
        return_full_image=True,
        gaussian_kernel=True,
        sigma=1.5,
        kernel_size=11,
    )
    torch.testing.assert_close(ours[..., 5:-5, 5:-5], full[..., 5:-5, 5:-5], rtol=1e-6, atol=1e-6)
    assert torch.allclose(
        ssim_map(x, x, 1.0, pad=lambda t: F.pad(t, (5,) * 4)), torch.ones(1).double()
    )


def test_hole_metrics() -> None:
    nside = 32
    truth = torch.from_numpy(simulate_cmb(nside, 0))[None]
    observed = torch.ones_like(truth, dtype=torch.bool)
    observed[:, : truth.shape[1] // 3] = False
    assert float(hole_ssim(truth, truth, observed)) > 0.999
    worse = torch.where(observed, truth, torch.zeros_like(truth))
    assert float(hole_ssim(worse, truth, observed)) < 0.2
    t, o, w = truth[0].numpy(), observed[0].numpy(), worse[0].numpy()
    assert hole_mse(t, t, o) == 0 and hole_mse(w, t, o) > 100
    assert hole_correlation(t + 1.0, t, o) > 0.999


def test_cosmic_variance_fraction() -> None:
    nside = 64
    truth = simulate_cmb(nside, 1).astype(np.float64)
    cl = power_spectrum(truth)
    assert cl.size == 3 * nside
    np.testing.assert_allclose(cl, hp.anafast(hp.reorder(truth, n2r=True), iter=0))
    other = power_spectrum(simulate_cmb(nside, 2).astype(np.float64))
    for per_bin in (False, True):
        assert cosmic_variance_fraction(cl, cl, per_bin=per_bin) == 1.0
        # 30% of the power missing
        assert cosmic_variance_fraction(0.7 * cl, cl, per_bin=per_bin) < 0.2
    # another sky: inside the per-ell band nearly everywhere, inside the bin average's in part
    assert cosmic_variance_fraction(other, cl) > 0.9
    assert 0.2 < cosmic_variance_fraction(other, cl, per_bin=True) < 0.9
