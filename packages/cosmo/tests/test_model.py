"""SkyReconNet on HEALPix faces: pass-through of observed pixels, symmetry, learning, export."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import torch

from convsuite.core_ops.hub import create_model, list_models, list_presets, model_config
from convsuite.core_ops.io import InputError
from convsuite.cosmo.infer import prefill
from convsuite.cosmo.model import ContextBlock, SkyReconConfig, SkyReconNet
from convsuite.cosmo.train import SimulatedSkies, TrainingSkies, carry_over, inpainting_loss

NSIDE = 16


def _batch(seeds, nside: int = NSIDE) -> tuple[torch.Tensor, ...]:
    """(masked, observed, fill, truth), each (len(seeds), 12 nside^2), from the training data."""
    skies = SimulatedSkies(max(seeds) + 1, 0, TrainingSkies(nside=nside))
    return tuple(torch.stack(column) for column in zip(*(skies[s] for s in seeds), strict=True))


def _prefilled(masked: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
    """The pre-fill of each map of a batch, float64."""
    return torch.from_numpy(
        np.stack([prefill(m, o) for m, o in zip(masked.numpy(), observed.numpy(), strict=True)])
    )


def test_observed_pixels_pass_through_and_levels() -> None:
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="tiny").eval()
    masked, observed, fill, _ = _batch([0, 1])
    torch.testing.assert_close(fill, _prefilled(masked, observed).float(), rtol=0, atol=0)
    with torch.no_grad():
        out = net(masked, observed, fill)
    assert out.shape == masked.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[observed], masked[observed], rtol=0, atol=0)
    assert net.config.levels(32) == 3 and net.config.levels(8) == 1
    with pytest.raises(ValueError, match="needs 4 widths"):
        net.config.levels(64)
    small = model_config("skyrecon", "small")
    assert SkyReconConfig.from_dict(small.to_dict()) == small


def test_rotating_the_sky_by_90_degrees_rotates_the_output() -> None:
    """In eval mode the network commutes with the 90 deg rotation about the pole (a face shift)."""
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="tiny").double().eval()
    masked, observed, _, _ = _batch([3])
    masked = masked.double()
    theta, phi = hp.pix2ang(NSIDE, np.arange(masked.shape[1]), nest=True)
    moved = torch.from_numpy(hp.ang2pix(NSIDE, theta, phi + np.pi / 2, nest=True))
    rotated_masked, rotated_observed = torch.empty_like(masked), torch.empty_like(observed)
    rotated_masked[:, moved], rotated_observed[:, moved] = masked, observed
    with torch.no_grad():
        out = net(masked, observed, _prefilled(masked, observed))
        rotated_fill = _prefilled(rotated_masked, rotated_observed)
        out_rotated = net(rotated_masked, rotated_observed, rotated_fill)
    torch.testing.assert_close(out_rotated[:, moved], out, rtol=1e-9, atol=1e-9)


def test_export_gives_the_same_output() -> None:
    """The network is a pure torch module: ``torch.export`` traces it, numpy-free, and the
    exported program computes what the module does (also on a second batch of other values)."""
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="tiny").eval()
    for conv in net.exit:  # as if trained: the correction path counts in the output
        torch.nn.init.normal_(conv.weight, std=0.5)
    first, second = _batch([4], nside=32), _batch([5], nside=32)
    exported = torch.export.export(net, first[:3]).module()
    with torch.no_grad():
        expected = [net(*batch[:3]) for batch in (first, second)]
    for (masked, observed, fill, _), want in zip((first, second), expected, strict=True):
        with torch.no_grad():
            got = exported(masked, observed, fill)
        assert not torch.equal(want[~observed], fill[~observed])
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-4)


def test_tiny_network_learns_to_inpaint() -> None:
    """60 steps on simulated skies: the untrained network is its diffusive fill exactly (zero
    output convolutions), the trained one improves on it (held-out hole MSE)."""
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="tiny")
    optimizer = torch.optim.AdamW(net.parameters(), lr=3e-3)
    masked, observed, fill, truth = _batch(range(100, 104))

    def hole_mse() -> float:
        net.eval()
        with torch.no_grad():
            return float(((net(masked, observed, fill) - truth)[~observed] ** 2).mean())

    zero_fill = float((truth[~observed] ** 2).mean())
    diffusive = float(((fill - truth) ** 2)[~observed].mean())
    before = hole_mse()
    for step in range(60):
        net.train()
        batch = _batch(range(4 * step, 4 * step + 4))
        prediction = net(*batch[:3])
        loss = inpainting_loss(prediction, batch[3], batch[1], 0.5, 100.0)[0]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = hole_mse()
    assert before == pytest.approx(diffusive, rel=1e-4) and diffusive < 0.7 * zero_fill
    assert after < 0.97 * diffusive  # the correction learned (806 vs 838 at seed 0)


def test_a_lower_nside_network_carries_over_and_starts_at_the_diffusive_fill() -> None:
    torch.manual_seed(0)
    trained = create_model("skyrecon", preset="tiny")
    for conv in trained.exit:  # as if trained: output convolutions no longer zero
        torch.nn.init.normal_(conv.weight)
    bigger = create_model("skyrecon", preset="tiny").eval()
    carry_over(bigger, trained.state_dict(), NSIDE // 2, NSIDE)
    torch.testing.assert_close(
        bigger.down[0].branches.convs[0].weight, trained.down[0].branches.convs[0].weight
    )
    masked, observed, fill, _ = _batch([7])
    with torch.no_grad():
        out = bigger(masked, observed, fill)
    torch.testing.assert_close(out, torch.where(observed, masked, fill))
    carry_over(bigger, trained.state_dict(), NSIDE, NSIDE)  # same Nside: everything carried
    torch.testing.assert_close(bigger.exit[1].weight, trained.exit[1].weight)


def test_registry_builds_the_presets_and_refuses_unknown_ones() -> None:
    assert "skyrecon" in list_models() and list_presets("skyrecon") == ["small", "tiny"]
    tiny = create_model("skyrecon", preset="tiny")
    assert isinstance(tiny, SkyReconNet) and tiny.config == model_config("skyrecon", "tiny")
    assert len(tiny.entry) == 3 and tiny.card is None
    wider = create_model("skyrecon", preset="tiny", widths=(20, 12, 8))
    assert wider.entry[0].out_channels == 20
    small = SkyReconConfig(adaptive_scale=True)
    assert create_model("skyrecon").config == small  # the default preset
    with pytest.raises(InputError, match="presets: small, tiny"):
        create_model("skyrecon", preset="paper")
    with pytest.raises(InputError, match="bottom_nside must be a power of two"):
        model_config("skyrecon", "tiny", bottom_nside=6)
    with pytest.raises(InputError, match="unknown SkyReconConfig keys 'depth'"):
        SkyReconConfig.from_dict({"depth": 3}, source="card.json")


def test_context_block_loads_the_branch_names_of_the_bundled_checkpoints() -> None:
    """Before ContextBlock was built on core-ops' MultiDilatedConv2d its branches were ``local``
    and ``context.<i>``; state dicts in that layout load into the current names."""
    torch.manual_seed(0)
    block = ContextBlock(4, (2, 4)).eval()
    current = block.state_dict()
    assert [k for k in current if "convs" in k] == [f"branches.convs.{g}.weight" for g in range(3)]
    renames = {"branches.convs.0.": "local.", "branches.convs.1.": "context.0."}
    renames["branches.convs.2."] = "context.1."
    old_layout = {}
    for key, value in current.items():
        for new, old in renames.items():
            key = key.replace(new, old)
        old_layout[key] = value
    assert "local.weight" in old_layout and "context.1.weight" in old_layout
    fresh = ContextBlock(4, (2, 4)).eval()
    fresh.load_state_dict(old_layout)  # strict: every key placed, none left over
    faces = torch.randn(12, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fresh(faces), block(faces), rtol=0, atol=0)
    # nested in the network, by the network's own prefixes (the bundled files' layout)
    net = create_model("skyrecon", preset="tiny")
    nested = {
        k.replace("down.1.branches.convs.0.", "down.1.local."): v
        for k, v in net.state_dict().items()
    }
    assert "down.1.local.weight" in nested
    loaded = create_model("skyrecon", preset="tiny")
    loaded.load_state_dict(nested)
    branch = loaded.down[1].branches.convs[0].weight
    torch.testing.assert_close(branch, net.down[1].branches.convs[0].weight, rtol=0, atol=0)
