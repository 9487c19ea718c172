"""Synthetic speech: a source-filter (pitch pulse train + formant resonators) talker, seeded.

Used when espeak-ng is not installed (it is not on this machine): voiced syllables from a glottal
pulse train with a declining, wandering f0 contour and jitter, shaped by three time-varying formant
resonators (vowel targets of Peterson & Barney, 1952, scaled by the talker's vocal-tract length),
unvoiced fricatives and plosive bursts of band-passed noise, syllabic amplitude envelopes and
pauses between words. Its spectrogram has harmonics, formant tracks, onsets and silences, which is
what PESQ, STOI and the AEC network key on; it is not intelligible speech.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convsuite.audio.data.wav import SAMPLE_RATE

__all__ = ["Talker", "random_talker", "synthesize_speech"]

# (F1, F2, F3) in Hz for an adult male vocal tract (Peterson & Barney 1952, rounded).
_VOWELS = np.array(
    [
        [270, 2290, 3010],  # i
        [390, 1990, 2550],  # I
        [530, 1840, 2480],  # E
        [660, 1720, 2410],  # ae
        [730, 1090, 2440],  # a
        [570, 840, 2410],  # O
        [440, 1020, 2240],  # U
        [300, 870, 2240],  # u
        [640, 1190, 2390],  # V
        [490, 1350, 1690],  # er
    ],
    dtype=np.float64,
)
_BANDWIDTHS = np.array([80.0, 110.0, 170.0])
_BLOCK = 160  # formant update interval, samples (10 ms)


@dataclass(frozen=True)
class Talker:
    """A synthetic talker.

    Args:
        f0_hz: mean fundamental frequency, Hz (about 85-155 male, 165-255 female voices).
        tract_scale: formant scale relative to the male table (1.0 male, about 1.17 female).
        rate: syllables per second.
        breathiness: aspiration noise mixed into the voiced source, 0..1.
    """

    f0_hz: float
    tract_scale: float
    rate: float
    breathiness: float


def random_talker(rng: np.random.Generator) -> Talker:
    """A talker drawn from ``rng``: male or female f0 and tract length, speaking rate, breath."""
    female = rng.random() < 0.5
    return Talker(
        f0_hz=float(rng.uniform(165, 255) if female else rng.uniform(85, 155)),
        tract_scale=float(rng.uniform(1.1, 1.25) if female else rng.uniform(0.92, 1.05)),
        rate=float(rng.uniform(3.0, 5.5)),
        breathiness=float(rng.uniform(0.02, 0.12)),
    )


def _resonate(x: np.ndarray, freqs: np.ndarray, bandwidth: float) -> np.ndarray:
    """Second-order resonator with its centre frequency updated every block (state carried)."""
    from scipy.signal import lfilter

    out = np.empty_like(x)
    zi = np.zeros(2)
    for b, freq in enumerate(freqs):
        r = np.exp(-np.pi * bandwidth / SAMPLE_RATE)
        theta = 2 * np.pi * freq / SAMPLE_RATE
        a = [1.0, -2 * r * np.cos(theta), r * r]
        gain = 1 - r  # roughly unit gain at the centre frequency
        block = slice(b * _BLOCK, (b + 1) * _BLOCK)
        out[block], zi = lfilter([gain], a, x[block], zi=zi)
    return out


def synthesize_speech(
    seconds: float, rng: np.random.Generator, talker: Talker | None = None
) -> np.ndarray:
    """``seconds`` of synthetic speech at 16 kHz, float32 (samples,), RMS about 0.05 when active.

    Args:
        seconds: length.
        rng: the random source (seeded by the caller).
        talker: the voice; default :func:`random_talker`.
    """
    from scipy.signal import butter, lfilter

    talker = talker or random_talker(rng)
    n = int(round(seconds * SAMPLE_RATE))
    blocks = -(-n // _BLOCK)
    length = blocks * _BLOCK
    # Syllable plan: (start, voiced length, consonant kind) in samples, words separated by pauses.
    envelope = np.zeros(length)
    voiced = np.zeros(length)
    fricative = np.zeros(length)
    targets = np.zeros((blocks, 3))
    position = int(rng.uniform(0.0, 0.3) * SAMPLE_RATE)
    vowel = rng.integers(len(_VOWELS))
    while position < length:
        for _ in range(int(rng.integers(1, 5))):  # syllables in this word
            consonant = int(rng.uniform(0.02, 0.09) * SAMPLE_RATE)
            kind = rng.integers(3)  # 0 none, 1 fricative, 2 plosive burst
            if kind and position + consonant < length:
                span = consonant if kind == 1 else consonant // 4
                shape = np.hanning(2 * span)[span:] if kind == 2 else np.hanning(span)
                fricative[position : position + span] = shape[: length - position]
                position += span
            syllable = int(rng.uniform(0.6, 1.4) / talker.rate * SAMPLE_RATE)
            end = min(position + syllable, length)
            if end <= position:
                break
            ramp = np.hanning(end - position) ** 0.5
            envelope[position:end] = ramp * rng.uniform(0.5, 1.0)
            voiced[position:end] = 1.0
            new_vowel = rng.integers(len(_VOWELS))
            first, last = position // _BLOCK, max(position // _BLOCK + 1, end // _BLOCK)
            path = np.linspace(_VOWELS[vowel], _VOWELS[new_vowel], last - first)
            targets[first:last] = path
            vowel = new_vowel
            position = end
        position += int(rng.uniform(0.08, 0.45) * SAMPLE_RATE)
    # Blocks outside syllables keep the previous formant targets (no jumps into silence).
    filled = targets.copy()
    for b in range(1, blocks):
        if not filled[b].any():
            filled[b] = filled[b - 1]
    filled[~filled.any(axis=1)] = _VOWELS[4]
    formants = filled * talker.tract_scale * rng.uniform(0.97, 1.03, size=(1, 3))
    # f0 contour: declination, slow intonation, per-period jitter.
    t = np.arange(length) / SAMPLE_RATE
    wander = np.interp(
        t, np.linspace(0, t[-1] + 1e-3, 8), rng.normal(0, 0.08, size=8), left=0, right=0
    )
    f0 = talker.f0_hz * (1.1 - 0.15 * t / max(t[-1], 1e-3)) * np.exp(wander)
    f0 *= 1 + 0.01 * rng.standard_normal(length)
    phase = np.cumsum(f0 / SAMPLE_RATE)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    b_glottal, a_glottal = [1.0], [1.0, -1.9, 0.9025]  # two poles at 0.95: -12 dB/octave tilt
    source = lfilter(b_glottal, a_glottal, pulses)
    source = source / (np.std(source) + 1e-12)
    source += talker.breathiness * rng.standard_normal(length)
    tract = source * voiced
    for k in range(3):
        tract = _resonate(tract, formants[:, k], _BANDWIDTHS[k] * talker.tract_scale)
    tract = lfilter([1.0, -0.95], [1.0], tract)  # lip radiation
    tract *= envelope
    b_fric, a_fric = butter(2, [2500, 7000], btype="band", fs=SAMPLE_RATE)
    noise = lfilter(b_fric, a_fric, rng.standard_normal(length)) * fricative
    tract = tract / (np.sqrt(np.mean(tract[voiced > 0] ** 2)) + 1e-12)
    noise = (
        noise / (np.sqrt(np.mean(noise[fricative > 0] ** 2)) + 1e-12) if fricative.any() else noise
    )
    speech = tract + 0.3 * noise
    speech = 0.05 * speech / (np.sqrt(np.mean(speech[envelope > 0] ** 2)) + 1e-12)
    return speech[:n].astype(np.float32)
