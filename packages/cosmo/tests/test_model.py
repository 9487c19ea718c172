"""SkyReconNet on HEALPix faces: pass-through of observed pixels, symmetry, learning."""

from __future__ import annotations

import pytest
import torch

from convsuite.cosmo.data import simulate_sky
from convsuite.core_ops.hub import model_config
from convsuite.cosmo.model import SkyReconConfig, SkyReconNet, diffusive_fill
from convsuite.cosmo.train import carry_over, inpainting_loss

NSIDE = 16


def _batch(seeds, nside: int = NSIDE) -> tuple[torch.Tensor, ...]:
    skies = [simulate_sky(nside, s, f_sky=(0.6, 0.9)) for s in seeds]
    return tuple(
        torch.stack([torch.from_numpy(getattr(k, name)) for k in skies])
        for name in ("masked", "observed", "truth")
    )


def test_observed_pixels_pass_through_and_levels() -> None:
    torch.manual_seed(0)
    net = SkyReconNet(model_config("skyrecon", "tiny")).eval()
    masked, observed, truth = _batch([0, 1])
    with torch.no_grad():
        out = net(masked, observed)
    assert out.shape == masked.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[observed], masked[observed], rtol=0, atol=0)
    assert net.config.levels(32) == 3 and net.config.levels(8) == 1
    with pytest.raises(ValueError, match="needs 4 widths"):
        net.config.levels(64)
    small = model_config("skyrecon", "small")
    assert SkyReconConfig.from_dict(small.to_dict()) == small


def test_rotating_the_sky_by_90_degrees_rotates_the_output() -> None:
    """In eval mode the network commutes with the 90 deg rotation about the pole (a face shift)."""
    import healpy as hp
    import numpy as np

    torch.manual_seed(0)
    net = SkyReconNet(model_config("skyrecon", "tiny")).double().eval()
    masked, observed, _ = _batch([3])
    theta, phi = hp.pix2ang(NSIDE, np.arange(masked.shape[1]), nest=True)
    moved = torch.from_numpy(hp.ang2pix(NSIDE, theta, phi + np.pi / 2, nest=True))
    rotated_masked, rotated_observed = torch.empty_like(masked.double()), torch.empty_like(observed)
    rotated_masked[:, moved], rotated_observed[:, moved] = masked.double(), observed
    with torch.no_grad():
        out = net(masked.double(), observed)
        out_rotated = net(rotated_masked, rotated_observed)
    torch.testing.assert_close(out_rotated[:, moved], out, rtol=1e-9, atol=1e-9)


def test_tiny_network_learns_to_inpaint() -> None:
    """60 steps on simulated skies: the untrained network is its diffusive fill exactly (zero
    output convolutions), the trained one improves on it (held-out hole MSE)."""
    torch.manual_seed(0)
    net = SkyReconNet(model_config("skyrecon", "tiny"))
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    held_out = _batch(range(100, 104))

    def hole_mse() -> float:
        net.eval()
        with torch.no_grad():
            masked, observed, truth = held_out
            return float(((net(masked, observed) - truth)[~observed] ** 2).mean())

    zero_fill = float((held_out[2][~held_out[1]] ** 2).mean())
    fill = diffusive_fill(held_out[0], held_out[1].double())
    diffusive = float(((fill - held_out[2]) ** 2)[~held_out[1]].mean())
    before = hole_mse()
    for step in range(60):
        net.train()
        masked, observed, truth = _batch(range(4 * step, 4 * step + 4))
        loss = inpainting_loss(net(masked, observed), truth, observed, 0.5, 100.0)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = hole_mse()
    print(
        f"zero {zero_fill:.0f} diffusive {diffusive:.0f} untrained {before:.0f} trained {after:.0f}"
    )
    assert before == pytest.approx(diffusive, rel=1e-4) and diffusive < 0.7 * zero_fill
    assert after < 0.97 * diffusive  # the correction learned (806 vs 838 at seed 0)


def test_a_lower_nside_network_carries_over_and_starts_at_the_diffusive_fill() -> None:
    torch.manual_seed(0)
    trained = SkyReconNet(model_config("skyrecon", "tiny"))
    for conv in trained.exit:  # as if trained: output convolutions no longer zero
        torch.nn.init.normal_(conv.weight)
    bigger = SkyReconNet(model_config("skyrecon", "tiny")).eval()
    carry_over(bigger, trained.state_dict(), NSIDE // 2, NSIDE)
    torch.testing.assert_close(bigger.down[0].local.weight, trained.down[0].local.weight)
    masked, observed, _ = _batch([7])
    with torch.no_grad():
        out = bigger(masked, observed)
    fill = diffusive_fill(masked * observed, observed.float())
    torch.testing.assert_close(out, torch.where(observed, masked, fill))
    carry_over(bigger, trained.state_dict(), NSIDE, NSIDE)  # same Nside: everything carried
    torch.testing.assert_close(bigger.exit[1].weight, trained.exit[1].weight)


def test_registry_builds_the_presets_and_refuses_unknown_ones() -> None:
    from convsuite.core_ops.hub import create_model, list_models, list_presets
    from convsuite.core_ops.io import InputError

    assert "skyrecon" in list_models() and list_presets("skyrecon") == ["small", "tiny"]
    tiny = create_model("skyrecon", preset="tiny")
    assert isinstance(tiny, SkyReconNet) and tiny.config == model_config("skyrecon", "tiny")
    assert len(tiny.entry) == 3 and tiny.card is None
    wider = create_model("skyrecon", preset="tiny", widths=(20, 12, 8))
    assert wider.entry[0].out_channels == 20
    assert create_model("skyrecon").config == SkyReconConfig()  # the default preset: small
    with pytest.raises(InputError, match="presets: small, tiny"):
        create_model("skyrecon", preset="paper")
    with pytest.raises(InputError, match="bottom_nside must be a power of two"):
        model_config("skyrecon", "tiny", bottom_nside=6)
    with pytest.raises(InputError, match="unknown SkyReconConfig keys 'depth'"):
        SkyReconConfig.from_dict({"depth": 3}, source="card.json")
