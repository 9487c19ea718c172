"""The network: paper-sized parameter count, causality, export, bounded dual masks, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convsuite.audio.metrics import erle_db
from convsuite.audio.model import D3AEC, D3AECConfig, bounded_mask, complex_multiply, compress
from convsuite.audio.train import (
    AECModule,
    SimulatedCalls,
    _pseudo,
    residual_db,
    spectral_loss,
    speech_distortion,
)
from convsuite.core_ops.hub import create_model, model_config


def test_paper_preset_has_354k_parameters() -> None:
    net = create_model("d3aec", preset="paper")
    assert abs(net.num_parameters - 354_000) <= 0.05 * 354_000
    assert net.num_parameters == 356_084
    assert net.receptive_frames * 256 / 16000 > 0.5  # sees more far-end past than the max delay


def test_complex_helpers_match_complex_arithmetic() -> None:
    a = torch.randn(2, 3, 4, dtype=torch.complex128)
    b = torch.randn(2, 3, 4, dtype=torch.complex128)

    def pseudo(z: torch.Tensor) -> torch.Tensor:
        return torch.cat([z.real, z.imag], dim=1)

    torch.testing.assert_close(complex_multiply(pseudo(a), pseudo(b)), pseudo(a * b))
    compressed = compress(pseudo(a), 0.3, eps=0.0)
    torch.testing.assert_close(compressed, pseudo(a.abs() ** 0.3 * torch.exp(1j * a.angle())))
    mask = bounded_mask(pseudo(a) * 10)
    modulus = (mask[:, :3] ** 2 + mask[:, 3:] ** 2).sqrt()
    assert modulus.max() < 1.0 and modulus.max() > 0.99  # tanh bound, saturating


def test_network_is_causal_and_exports() -> None:
    torch.manual_seed(0)
    net = create_model("d3aec", preset="tiny").eval()
    mic, far = torch.randn(1, 2, 12, 257), torch.randn(1, 2, 12, 257)
    changed = far.clone()
    changed[:, :, 8:] += 1.0
    with torch.no_grad():
        a, b = net(mic, far)[0], net(mic, changed)[0]
    torch.testing.assert_close(a[:, :, :8], b[:, :, :8])
    assert not torch.allclose(a[:, :, 8:], b[:, :, 8:])
    exported = torch.export.export(net, (mic, far))
    torch.testing.assert_close(exported.module()(mic, far)[0], a)


def test_tiny_network_learns_to_cancel_echo() -> None:
    """A tiny network trained briefly on simulated calls beats passing the microphone through."""
    torch.manual_seed(0)
    module = AECModule(model_config("d3aec", "tiny", growth_rate=6), lr=1e-2, residual_weight=0.0)
    data = SimulatedCalls(4, seed=0, seconds=0.75)
    items = [data[i] for i in range(4)]
    batches = [
        {k: torch.stack([it[k] for it in items[j : j + 2]]) for k in items[0]} for j in (0, 2)
    ]

    def mean_loss() -> float:
        module.eval()
        with torch.no_grad():
            return float(np.mean([module._loss(b)[0] for b in batches]))

    unprocessed = float(
        np.mean(
            [
                spectral_loss(_pseudo(b["mic"]), _pseudo(b["near"]))
                + 0.5 * spectral_loss(_pseudo(b["mic"]), _pseudo(b["echo_free"]))
                for b in batches
            ]
        )
    )
    before = mean_loss()
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    for _ in range(20):
        module.train()
        for batch in batches:
            optimizer.zero_grad()
            module._loss(batch)[0].backward()
            optimizer.step()
    after = mean_loss()
    assert after < 0.7 * before, (before, after)
    assert after < 0.8 * unprocessed, (after, unprocessed)  # better than no processing at all


def test_residual_db_is_minus_the_erle_in_far_end_single_talk() -> None:
    torch.manual_seed(0)
    mic, out = torch.randn(2, 4000, dtype=torch.float64), 0.1 * torch.randn(2, 4000)
    spectra = [_pseudo(x.double()) for x in (mic, out)]
    silence = torch.zeros_like(spectra[0])
    erle = [erle_db(m.numpy(), o.numpy(), skip_s=0.0) for m, o in zip(mic, out, strict=True)]
    # Parseval (up to the window's constant, which cancels in the ratio): spectra vs samples.
    got = residual_db(spectra[1], silence, spectra[0]).item()
    assert abs(got + np.mean(erle)) < 0.3, (got, erle)
    assert residual_db(silence, silence, spectra[0]).item() == pytest.approx(-60.0, abs=1e-6)


def test_residual_db_floor() -> None:
    torch.manual_seed(0)
    mic = _pseudo(torch.randn(2, 4000))
    silence = torch.zeros_like(mic)
    # Past an ERLE of -floor_db the term barely moves: 60 dB counts ~40, 20 dB still ~20.
    quiet, loud = 1e-3 * mic, 0.1 * mic
    assert residual_db(quiet, silence, mic, floor_db=-40.0).item() == pytest.approx(-40, abs=0.1)
    assert residual_db(loud, silence, mic, floor_db=-40.0).item() == pytest.approx(-20, abs=0.1)
    assert residual_db(quiet, silence, mic).item() == pytest.approx(-60 + 10 * np.log10(2))


def test_speech_distortion_charges_the_masks_for_near_end_speech_only() -> None:
    torch.manual_seed(0)
    target = torch.randn(2, 2, 6, 257)
    unit = torch.cat([torch.ones(2, 1, 6, 257), torch.zeros(2, 1, 6, 257)], dim=1)
    assert speech_distortion(unit, unit, target).item() == pytest.approx(0.0, abs=1e-6)
    half = 0.5 * unit
    torch.testing.assert_close(
        speech_distortion(half, unit, target), spectral_loss(0.5 * target, target)
    )
    assert speech_distortion(half, half, torch.zeros_like(target)).item() == 0.0  # fst: silent
    # The module adds the weighted term on the masks the network applies to the microphone.
    module = AECModule(model_config("d3aec", "tiny"), residual_weight=0.0).eval()
    call = SimulatedCalls(2, seed=3, seconds=0.5, mix=(0.0, 0.0, 1.0))
    batch = {k: torch.stack([call[i][k] for i in range(2)]) for k in call[0]}
    with torch.no_grad():
        plain = module._loss(batch)[0]
        module.distortion_weight = 2.0
        weighted = module._loss(batch)[0]
        masks = module.net.mask_pair(_pseudo(batch["mic"]), _pseudo(batch["far"]))
        expected = 2.0 * speech_distortion(*masks, _pseudo(batch["near"]))
    assert expected.item() > 0
    torch.testing.assert_close(weighted - plain, expected)


def test_simulated_calls_follow_the_scenario_mix() -> None:
    far_end_only = SimulatedCalls(3, seed=0, seconds=0.5, mix=(1.0, 0.0, 0.0))
    assert all(not far_end_only[i]["near"].any() for i in range(3))
    near_end_only = SimulatedCalls(3, seed=0, seconds=0.5, mix=(0.0, 1.0, 0.0))
    for call in (near_end_only[i] for i in range(3)):  # no echo: the mic is near end + noise
        torch.testing.assert_close(call["mic"], call["echo_free"])
    with pytest.raises(ValueError, match="mix"):
        SimulatedCalls(3, seed=0, mix=(0.5, 0.5, 0.5))


def test_config_round_trip_and_checks() -> None:
    config = D3AECConfig(growth_rate=7)
    assert D3AECConfig.from_dict(config.to_dict()) == config
    assert isinstance(
        D3AEC(D3AECConfig(stem_channels=2, growth_rate=2, num_layers=1, num_blocks=1)), D3AEC
    )
    try:
        D3AECConfig(compression=0.0)
    except ValueError as error:
        assert "compression" in str(error)
    else:
        raise AssertionError("compression 0 accepted")
