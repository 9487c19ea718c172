"""WAV reading and its refusals, the AEC-Challenge layout, the simulator, and delay estimation."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from convsuite.audio.data import (
    SCENARIOS,
    check_pair,
    read_challenge_set,
    read_wav,
    simulate_call,
    synthesize_speech,
    write_challenge_set,
    write_wav,
)
from convsuite.audio.infer import align_far, estimate_delay
from convsuite.core_ops.errors import InputError


def test_wav_round_trip_and_resampling(tmp_path) -> None:
    rng = np.random.default_rng(0)
    signal = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    write_wav(tmp_path / "a.wav", signal)
    np.testing.assert_allclose(read_wav(tmp_path / "a.wav"), signal, atol=1 / 32767)
    t = np.arange(48000) / 48000
    sf.write(tmp_path / "b.wav", 0.5 * np.sin(2 * np.pi * 440 * t), 48000)
    with pytest.warns(UserWarning, match="resampling from 48000 Hz"):
        resampled = read_wav(tmp_path / "b.wav")
    assert resampled.size == 16000
    spectrum = np.abs(np.fft.rfft(resampled))
    assert abs(np.argmax(spectrum) - 440) <= 1  # 1 Hz bins: the tone survived


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("missing", "no such audio file"),
        ("text", "not a readable audio file"),
        ("stereo", "2 channels"),
        ("empty", "empty"),
        ("zeros", "all zeros"),
    ],
)
def test_bad_wav_is_refused_in_one_line(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "x.wav"
    if content == "text":
        path.write_text("not audio")
    elif content == "stereo":
        sf.write(path, np.full((100, 2), 0.1), 16000)
    elif content == "empty":
        sf.write(path, np.zeros(0), 16000)
    elif content == "zeros":
        sf.write(path, np.zeros(100), 16000)
    with pytest.raises(InputError, match=message) as error:
        read_wav(path)
    assert "x.wav" in str(error.value) and "\n" not in str(error.value)


def test_clipping_warns(tmp_path) -> None:
    sf.write(tmp_path / "c.wav", np.ones(100) * 0.9999, 16000, subtype="FLOAT")
    with pytest.warns(UserWarning, match="clipping"):
        read_wav(tmp_path / "c.wav")


def test_pair_check() -> None:
    mic = np.ones(32000, np.float32) * 0.1
    _, far = check_pair(mic, np.ones(20000, np.float32) * 0.1)
    assert far.size == mic.size and not far[20000:].any()
    with pytest.raises(InputError, match="by more than 1 s"):
        check_pair(mic, np.ones(10000, np.float32))


def test_simulator_is_seeded_and_consistent() -> None:
    a, b = simulate_call(5, 2.0), simulate_call(5, 2.0)
    assert np.array_equal(a.mic, b.mic) and a.meta == b.meta
    held_out = simulate_call(5, 2.0, split="test")
    assert not np.allclose(held_out.far, a.far)
    for scenario in SCENARIOS:
        call = simulate_call(11, 2.0, scenario=scenario)
        np.testing.assert_allclose(call.mic, call.near + call.echo + call.noise, atol=1e-6)
        assert call.scenario == scenario and np.max(np.abs(call.mic)) <= 0.99 + 1e-6
        assert (scenario == "fst") == (not call.near.any())
        assert (scenario == "nst") == (not call.echo.any())


def test_synthetic_speech_has_pitch_and_pauses() -> None:
    from convsuite.audio.data.speech import Talker

    talker = Talker(f0_hz=120.0, tract_scale=1.0, rate=4.0, breathiness=0.02)
    speech = synthesize_speech(3.0, np.random.default_rng(1), talker)
    frames = speech[: 3 * 16000 // 400 * 400].reshape(-1, 400)
    energy = (frames**2).mean(axis=1)
    assert (energy < 1e-3 * energy.max()).mean() > 0.05  # pauses
    loud = frames[np.argmax(energy)].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(loud * np.hanning(400), 16000))
    f0 = 60 + np.argmax(spectrum[60:300])  # strongest harmonic region below 300 Hz
    assert 90 < f0 < 300


def test_gcc_phat_finds_the_echo_delay() -> None:
    for seed in range(3):
        call = simulate_call(seed, 3.0, scenario="fst", noisy=0.0)
        delay = estimate_delay(call.mic, call.far)
        true = call.meta["delay_ms"] * 16
        # The correlation peaks at the loudspeaker delay plus the path to the strongest arrival
        # (air, pyroomacoustics' 40-sample fractional-delay offset, an early reflection); the
        # estimate is that peak less an 80-sample margin, so it stays close to the true delay.
        assert true - 200 < delay <= true + 40
        aligned = align_far(call.far, delay)
        assert aligned.size == call.far.size and np.array_equal(
            aligned[delay:], call.far[: call.far.size - delay]
        )


def test_challenge_layout_round_trip(tmp_path) -> None:
    summary = write_challenge_set(tmp_path, seed=3, count=3, seconds=1.5)
    assert summary == "1 fst, 1 nst, 1 dt"
    assert (tmp_path / "nearend_mic_signal" / "nearend_mic_fileid_0.wav").is_file()
    calls = read_challenge_set(tmp_path)
    assert [c.scenario for c in calls] == ["fst", "nst", "dt"]
    original = simulate_call(5, 1.5, scenario="dt", split="test")
    np.testing.assert_allclose(calls[2].mic, original.mic, atol=1 / 16000)
    # Without the scenario column the scenario is inferred from the silent references.
    text = (tmp_path / "meta.csv").read_text().splitlines()
    (tmp_path / "meta.csv").write_text(
        "\n".join(["fileid"] + [r.split(",")[0] for r in text[1:]]) + "\n"
    )
    assert [c.scenario for c in read_challenge_set(tmp_path)] == ["fst", "nst", "dt"]
    (tmp_path / "meta.csv").unlink()
    with pytest.raises(InputError, match="no meta.csv"):
        read_challenge_set(tmp_path)
