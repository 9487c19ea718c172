"""Metrics against closed forms and the field's libraries; baselines cancel a linear echo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convsuite.audio.baselines import available_baselines, nlms, speex_mdf
from convsuite.audio.data import simulate_call
from convsuite.audio.metrics import aecmos, erle_db, pesq_wb, si_sdr_db, stoi


def test_erle_and_si_sdr_closed_forms() -> None:
    rng = np.random.default_rng(0)
    mic = rng.standard_normal(48000)
    assert erle_db(mic, 0.1 * mic) == pytest.approx(20.0)
    assert math.isnan(erle_db(np.zeros(48000), mic))
    mic -= mic.mean()
    noise = rng.standard_normal(48000)
    noise -= noise.mean()
    noise -= noise @ mic / (mic @ mic) * mic  # orthogonal to the reference
    estimate = 3.0 * (mic + 0.1 * noise / np.linalg.norm(noise) * np.linalg.norm(mic))
    assert si_sdr_db(mic, estimate) == pytest.approx(20.0, abs=1e-6)


def test_pesq_and_stoi_guards_and_extremes() -> None:
    speech = simulate_call(1, 3.0, scenario="nst", noisy=0.0).near
    assert pesq_wb(speech, speech) > 4.5
    assert stoi(speech, speech) > 0.99
    noisy = speech + 0.05 * np.random.default_rng(0).standard_normal(speech.size)
    assert pesq_wb(speech, noisy) < 2.5 and stoi(speech, noisy) < 0.95
    silent = np.zeros_like(speech)
    assert math.isnan(pesq_wb(speech, silent)) and math.isnan(pesq_wb(silent, speech))
    assert math.isnan(pesq_wb(speech, np.full_like(speech, np.nan)))
    assert math.isnan(stoi(silent, speech))


@pytest.fixture(scope="module")
def linear_echo() -> tuple[np.ndarray, np.ndarray]:
    """White far end through a 30 ms decaying echo path, 4 s."""
    rng = np.random.default_rng(1)
    far = 0.05 * rng.standard_normal(64000)
    path = rng.standard_normal(480) * np.exp(-np.arange(480) / 80)
    return np.convolve(far, path)[:64000] * 0.5, far


def test_nlms_converges_on_a_linear_echo(linear_echo) -> None:
    mic, far = linear_echo
    out = nlms(mic, far)
    early, late = erle_db(mic[:16000], out[:16000], 0.0), erle_db(mic[48000:], out[48000:], 0.0)
    # Heavily regularized (the step floor is 3x the mean far-end power) so that speech does not
    # make it diverge: it converges slowly but steadily.
    assert late > 9.0 and late > early + 3.0


def test_speex_cancels_a_linear_echo(linear_echo) -> None:
    mic, far = linear_echo
    assert erle_db(mic, speex_mdf(mic, far), skip_s=2.0) > 15.0


def test_available_baselines_lists_aec3_only_when_installed() -> None:
    names = set(available_baselines())
    try:
        import aec_audio_processing  # noqa: F401
    except ImportError:
        assert names == {"NLMS", "SpeexDSP"}
    else:
        assert names == {"NLMS", "SpeexDSP", "AEC3"}


def test_aecmos_rates_echo_removal() -> None:
    call = simulate_call(2, 4.0, scenario="fst", noisy=0.0)
    echo_left, _ = aecmos(call.far, call.mic, call.mic, "fst")
    echo_gone, _ = aecmos(call.far, call.mic, 1e-4 * call.mic, "fst")
    assert 1.0 <= echo_left < echo_gone <= 5.0
