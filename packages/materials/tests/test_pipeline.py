"""The detection pipeline: each pixel's own spectrum is scored, bands join seamlessly, lazy cubes
give the same scores, and the notebook API returns a hyperspy Signal2D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import model_config
from convsuite.materials.data import AnomalySpec, EnergyAxis, energy_axis, simulate_cube
from convsuite.materials.data.preprocess import prepare
from convsuite.materials.evaluate import classification
from convsuite.materials.infer import detect, detect_anomalies, grid_of
from convsuite.materials.model import EELSVAE, VAEOutput
from convsuite.materials.scoring import otsu_threshold, pearson_distance, window_channels

PLAIN = {"second_phase": False, "drift_ev": 0.0, "mixed_valence": False, "thickness_wedge": False}
AXIS = EnergyAxis(650.0, 0.5, 240)


class OracleVAE(EELSVAE):
    """A "perfect" network: reconstructs every pixel as the bulk spectrum it was given."""

    def __init__(self, bulk: np.ndarray) -> None:
        super().__init__(model_config("eels_vae", "tiny"))
        p = torch.from_numpy(np.clip(bulk, 1e-4, 1 - 1e-4))
        self.register_buffer("bulk_logits", torch.log(p / (1 - p)))

    def forward(self, x: torch.Tensor) -> VAEOutput:
        zeros = torch.zeros(x.shape[0], 8, x.shape[2] // 4, x.shape[3] // 4, 1)
        return VAEOutput(self.bulk_logits.expand_as(x).clone(), zeros, zeros)


@pytest.fixture(scope="module")
def single_pixel_cube():
    return simulate_cube(
        (32, 32),
        seed=4,
        anomalies=[AnomalySpec("shift", 2.0, 40)],
        energy=AXIS,
        dose=20000.0,
        **PLAIN,
    )


def test_single_pixel_anomalies_are_not_capped_by_spatial_averaging(single_pixel_cube) -> None:
    """With a perfect reconstruction, scoring each pixel's own spectrum finds single-pixel 2 eV
    shifts (F1 > 0.95); scoring the 3 x 3 averaged input instead smears each over 9 pixels and
    caps F1 far lower, as the issue warns."""
    cube = single_pixel_cube
    truth = cube.metadata.Anomalies.mask
    grid = grid_of(EELSVAE(model_config("eels_vae", "tiny")))
    prepared = prepare(cube.data, AXIS, grid)
    oracle = OracleVAE(np.median(prepared.network_input[~truth], axis=0)).eval()
    # Otsu on both sides: the comparison is of what is scored, not of the threshold
    found = detect(cube, oracle, fit=False, reference="network", threshold_method="otsu")
    own = classification(found.scores, found.mask, truth)
    assert own["f1"] > 0.95
    recon = 1 / (1 + np.exp(-oracle.bulk_logits.numpy()))
    averaged = pearson_distance(
        prepared.network_input, recon, window_channels(grid.values, (690, 730))
    )
    smeared = classification(averaged, averaged > otsu_threshold(averaged), truth)
    assert smeared["f1"] < 0.6 < own["f1"]


def test_a_network_trained_without_the_spatial_mean_is_fed_own_spectra() -> None:
    """``spatial_mean=False`` in the config: detect feeds each pixel's own spectrum (not the
    reference's 3 x 3 mean) to the network."""
    import dataclasses

    cube = simulate_cube((24, 24), seed=7, anomalies=(), energy=AXIS)
    config = dataclasses.replace(model_config("eels_vae", "tiny"), spatial_mean=False)
    torch.manual_seed(0)
    net = EELSVAE(config).eval()
    seen = []
    net.register_forward_pre_hook(lambda _, args: seen.append(args[0][0, 0].clone()))
    detect(cube, net, fit=False, reference="network")
    prepared = prepare(cube.data, AXIS, grid_of(net))
    assert len(seen) == 1
    assert np.allclose(seen[0].numpy(), prepared.own, atol=1e-6)
    assert not np.allclose(prepared.own, prepared.network_input, atol=1e-3)


def test_bands_and_lazy_cubes_give_the_same_scores(monkeypatch) -> None:
    import convsuite.materials.infer as infer

    cube = simulate_cube((40, 24), seed=6, anomalies=[AnomalySpec("shift", 3.0, 10)], energy=AXIS)
    torch.manual_seed(0)
    net = EELSVAE(model_config("eels_vae", "tiny")).eval()
    whole = detect(cube, net, fit=False)
    monkeypatch.setattr(infer, "LAZY_BAND_ROWS", 8)
    monkeypatch.setattr(infer, "CONTEXT_ROWS", 16)
    banded = detect(cube.as_lazy(), net, fit=False)
    np.testing.assert_allclose(banded.scores, whole.scores, atol=2e-3)
    assert banded.threshold == pytest.approx(whole.threshold, abs=5e-3)


def test_detect_anomalies_returns_a_signal2d(single_pixel_cube) -> None:
    net = EELSVAE(model_config("eels_vae", "tiny")).eval()
    scores = detect_anomalies(single_pixel_cube, net, fit=False)
    assert scores.axes_manager.signal_shape == (32, 32)
    assert scores.axes_manager.signal_axes[0].units == "nm"
    mask = scores.metadata.Anomalies.mask
    assert mask.dtype == bool and mask.shape == (32, 32)
    assert np.array_equal(mask, scores.data > scores.metadata.Anomalies.threshold)
    assert scores.metadata.Anomalies.nll.shape == (32, 32)


def test_fine_tuning_keeps_to_its_budget(single_pixel_cube) -> None:
    cube = simulate_cube((48, 48), seed=8, anomalies=[AnomalySpec("shift", 3.0, 20)], energy=AXIS)
    net = EELSVAE(model_config("eels_vae", "tiny")).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    found = detect(cube, net, fit=True, fit_seconds=4)
    assert 0 < found.fit_seconds < 15
    for key, value in net.state_dict().items():  # the caller's network is left as it was
        torch.testing.assert_close(value, before[key])


def test_refusals_name_the_problem(single_pixel_cube) -> None:
    net = EELSVAE(model_config("eels_vae", "tiny"))
    with pytest.raises(InputError, match="outside the energy axis"):
        detect(single_pixel_cube, net, window=(600, 700), fit=False)
    short = simulate_cube((8, 8), seed=0, anomalies=(), energy=EnergyAxis(690, 0.5, 120))
    with pytest.raises(InputError, match="does not cover"):
        detect(short, net, fit=False)
    assert energy_axis(short).stop == pytest.approx(749.5)


@pytest.mark.parametrize("axis", [EnergyAxis(650.0, 0.25, 480), EnergyAxis(601.3, 0.37, 500)])
def test_bundled_weights_work_on_any_calibration(axis: EnergyAxis) -> None:
    """The bundled network, without fine-tuning, finds 3 eV shifts on cubes of other offsets and
    dispersions than it was trained on (resampled from the calibrated axis)."""
    from convsuite.materials.infer import load_network

    cube = simulate_cube((48, 48), seed=21, anomalies=[AnomalySpec("shift", 3.0, 60)], energy=axis)
    found = detect(cube, load_network(), fit=False)
    assert classification(found.scores, found.mask, cube.metadata.Anomalies.mask)["f1"] > 0.9


def test_bf16_reconstruction_stays_close_to_fp32(small_cube) -> None:
    """``precision="bf16"`` (core-ops' precision API) converts the bundled network's convolutions
    and changes its logits by < 2% of their range and the mask hardly at all; the caller's
    network stays float32."""
    from convsuite.core_ops.precision import bf16_layers
    from convsuite.materials.infer import for_inference, load_network, reconstruct

    net = load_network()
    prepared = prepare(small_cube.data, energy_axis(small_cube), grid_of(net))
    fp32 = reconstruct(for_inference(net, "fp32"), prepared.network_input)
    low = for_inference(net, "bf16")
    assert bf16_layers(low)
    bf16 = reconstruct(low, prepared.network_input, precision="bf16")
    assert np.abs(bf16 - fp32).max() / np.abs(fp32).max() < 2e-2
    plain = detect(small_cube, net, fit=False)
    half = detect(small_cube, net, fit=False, precision="bf16")
    assert (plain.mask == half.mask).mean() > 0.99
    assert all(p.dtype == torch.float32 for p in net.parameters())
    with pytest.raises(InputError, match="precision"):
        detect(small_cube, net, fit=False, precision="fp16")
