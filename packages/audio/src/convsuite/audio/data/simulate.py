"""Seeded simulation of hands-free calls: echo paths, loudspeaker nonlinearity, delay, noise.

One :class:`Call` is a microphone signal ``mic = near + echo + noise`` with the far-end reference
``far`` (what the loudspeaker was sent) and the components kept for training targets and metrics.
Echo paths are pyroomacoustics shoebox rooms (random sizes, RT60 0.2-0.8 s; image sources up to
order 10 plus an exponential stochastic tail to the full RT60) or generic exponentially decaying
noise RIRs; half the calls switch to a second echo path half-way (a moved phone). The loudspeaker
is linear, hard-clipped, or the sigmoid of the AEC-Challenge synthetic set. The far-end to
microphone delay is 10-500 ms. Scenarios: far-end single talk (``fst``), near-end single talk
(``nst``), double talk (``dt``); stationary (coloured) or non-stationary (modulated, babble)
noise at a random SNR, echo at a random SER.

Held-out draws: :func:`simulate_call` with ``split="test"`` takes talkers, rooms and RIR shapes
from another random stream than ``split="train"`` (a disjoint seed space), so no test talker, room
or echo path is one the network saw in training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from convsuite.audio.data.speech import random_talker, synthesize_speech
from convsuite.audio.data.wav import SAMPLE_RATE

__all__ = ["SCENARIOS", "Call", "room_rir", "exponential_rir", "simulate_call"]

SCENARIOS = ("fst", "nst", "dt")
"""Far-end single talk, near-end single talk, double talk."""
Scenario = Literal["fst", "nst", "dt"]
_SPLIT_OFFSET = {"train": 0, "test": 1 << 40}


@dataclass
class Call:
    """One simulated call, 16 kHz float32 arrays of equal length (samples,).

    Attributes:
        mic: microphone signal, ``near + echo + noise``.
        far: far-end reference (loudspeaker input before the nonlinearity).
        near: near-end speech as it reaches the microphone (zeros in ``fst``).
        echo: echo at the microphone (zeros in ``nst``).
        noise: near-end background noise.
        scenario: ``"fst"``, ``"nst"`` or ``"dt"``.
        meta: the draws (SER, SNR dB, delay ms, RT60 s, RIR kind, nonlinearity, noise kind).
    """

    mic: np.ndarray
    far: np.ndarray
    near: np.ndarray
    echo: np.ndarray
    noise: np.ndarray
    scenario: str
    meta: dict = field(default_factory=dict)


def room_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A shoebox-room loudspeaker-to-microphone RIR (pyroomacoustics image sources + tail).

    Room 3-10 x 3-8 x 2.4-4 m; loudspeaker and microphone 5-50 cm apart (a phone or a laptop).
    Image sources up to order 10, then an exponential noise tail decaying 60 dB in ``rt60`` s,
    so long reverberation costs no high-order image sources. Peak normalized to 1.
    """
    import pyroomacoustics as pra

    dims = np.array([rng.uniform(3, 10), rng.uniform(3, 8), rng.uniform(2.4, 4.0)])
    absorption, max_order = pra.inverse_sabine(rt60, dims)
    room = pra.ShoeBox(
        dims, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(max_order, 10)
    )
    speaker = dims * rng.uniform(0.2, 0.8, size=3)
    direction = rng.normal(size=3)
    mic = speaker + direction / np.linalg.norm(direction) * rng.uniform(0.05, 0.5)
    mic = np.clip(mic, 0.1, dims - 0.1)
    room.add_source(speaker)
    room.add_microphone(mic)
    room.compute_rir()
    early = np.asarray(room.rir[0][0], dtype=np.float64)
    length = int(rt60 * SAMPLE_RATE)
    rir = np.zeros(max(length, early.size))
    rir[: early.size] = early
    start = int(0.05 * SAMPLE_RATE)
    t = np.arange(rir.size - start) / SAMPLE_RATE
    level = np.sqrt(np.mean(early[start // 2 : start] ** 2)) if early.size > start else 1e-3
    rir[start:] += level * rng.standard_normal(t.size) * np.exp(-6.91 * t / rt60)
    return rir / np.max(np.abs(rir))


def exponential_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A generic RIR: a direct path then Gaussian noise decaying 60 dB in ``rt60`` s; peak 1."""
    length = int(rt60 * SAMPLE_RATE)
    t = np.arange(length) / SAMPLE_RATE
    rir = rng.standard_normal(length) * np.exp(-6.91 * t / rt60) * rng.uniform(0.1, 0.4)
    rir[0] = 1.0
    return rir / np.max(np.abs(rir))


def _echo_path(rng: np.random.Generator) -> tuple[np.ndarray, str, float]:
    rt60 = float(rng.uniform(0.2, 0.8))
    if rng.random() < 0.6:
        return room_rir(rng, rt60), "room", rt60
    return exponential_rir(rng, rt60), "exponential", rt60


def _loudspeaker(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Linear, hard clipping at 50-90 % of the peak, or the AEC-Challenge sigmoid."""
    kind = rng.choice(["linear", "clip", "sigmoid"], p=[0.4, 0.3, 0.3])
    if kind == "clip":
        level = rng.uniform(0.5, 0.9) * np.max(np.abs(x))
        return np.clip(x, -level, level), "clip"
    if kind == "sigmoid":
        # AEC-Challenge (Sridhar et al. 2021): x -> 4 (2 / (1 + exp(-a b(x))) - 1), b(x) =
        # 1.5 x - 0.3 x^2, a = 4 where b > 0 else 0.5; scaled here to keep the input level.
        peak = np.max(np.abs(x)) + 1e-12
        u = x / peak
        b = 1.5 * u - 0.3 * u**2
        a = np.where(b > 0, 4.0, 0.5)
        return peak * (2 / (1 + np.exp(-a * b)) - 1), "sigmoid"
    return x, "linear"


def _noise(n: int, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    from scipy.signal import lfilter

    white = rng.standard_normal(n)
    kind = rng.choice(["stationary", "modulated", "babble"])
    if kind == "babble":
        noise = sum(synthesize_speech(n / SAMPLE_RATE, rng) for _ in range(4))
    else:
        pole = rng.uniform(-0.5, 0.95)
        noise = lfilter([1.0], [1.0, -pole], white)
        if kind == "modulated":
            t = np.arange(n) / SAMPLE_RATE
            rate = rng.uniform(0.3, 4.0)
            noise = noise * (0.2 + np.abs(np.sin(np.pi * rate * t + rng.uniform(0, np.pi))))
    noise = np.asarray(noise, dtype=np.float64)
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12), str(kind)


def _rms(x: np.ndarray) -> float:
    active = x[np.abs(x) > 1e-4 * (np.max(np.abs(x)) + 1e-12)]
    return float(np.sqrt(np.mean(active**2))) if active.size else 0.0


def simulate_call(
    seed: int,
    seconds: float = 4.0,
    scenario: Scenario | None = None,
    split: Literal["train", "test"] = "train",
    ser_db: tuple[float, float] = (-10.0, 10.0),
    snr_db: tuple[float, float] = (5.0, 40.0),
    noisy: float = 0.7,
) -> Call:
    """Simulate one call; the same ``(seed, split)`` always gives the same call.

    Args:
        seed: the call's seed.
        seconds: length.
        scenario: ``"fst"``, ``"nst"``, ``"dt"``, or None to draw one (20/20/60 %).
        split: ``"train"`` or ``"test"`` (disjoint random streams, see the module docstring).
        ser_db: range of the signal-to-echo ratio (near-end speech over echo) in double talk, dB.
        snr_db: range of the near-end SNR (speech, or echo in ``fst``, over noise), dB.
        noisy: probability that the near end has background noise.
    """
    rng = np.random.default_rng(seed + _SPLIT_OFFSET[split])
    n = int(round(seconds * SAMPLE_RATE))
    if scenario is None:
        scenario = rng.choice(SCENARIOS, p=[0.2, 0.2, 0.6])
    if scenario not in SCENARIOS:
        raise ValueError(f"scenario must be one of {SCENARIOS}, got {scenario!r}")
    level = 10 ** (rng.uniform(-32, -20) / 20)  # active near-end speech RMS, full scale
    far = synthesize_speech(seconds, rng, random_talker(rng)).astype(np.float64)
    near = synthesize_speech(seconds, rng, random_talker(rng)).astype(np.float64)
    near *= level / (_rms(near) + 1e-12)
    far *= 10 ** (rng.uniform(-26, -16) / 20) / (_rms(far) + 1e-12)
    far *= min(1.0, 0.99 / (np.max(np.abs(far)) + 1e-12))  # the reference stays inside full scale
    delay_ms = float(rng.uniform(10, 500))
    played, nonlinearity = _loudspeaker(far, rng)
    rir, rir_kind, rt60 = _echo_path(rng)
    delay = int(delay_ms * SAMPLE_RATE / 1000)
    played = np.concatenate([np.zeros(delay), played])[:n]
    from scipy.signal import fftconvolve

    echo = fftconvolve(played, rir)[:n]
    varying = bool(rng.random() < 0.5)
    if varying:  # the echo path changes half-way (cross-faded over 100 ms)
        second, _, _ = _echo_path(rng)
        other = fftconvolve(played, second)[:n]
        fade = np.clip((np.arange(n) - n // 2) / (0.1 * SAMPLE_RATE), 0.0, 1.0)
        echo = (1 - fade) * echo + fade * other
    ser = float(rng.uniform(*ser_db))
    if scenario == "nst":
        echo[:] = 0.0
    elif scenario == "fst":
        near[:] = 0.0
        echo *= level * 10 ** (rng.uniform(0, 10) / 20) / (_rms(echo) + 1e-12)
    else:
        echo *= level * 10 ** (-ser / 20) / (_rms(echo) + 1e-12)
    reference = level if scenario != "fst" else _rms(echo)
    snr = float(rng.uniform(*snr_db))
    if rng.random() < noisy:
        noise, noise_kind = _noise(n, rng)
        noise *= reference * 10 ** (-snr / 20)
    else:
        noise, noise_kind = np.zeros(n), "none"
    mic = near + echo + noise
    peak = np.max(np.abs(mic))
    if peak > 0.99:  # keep the microphone inside full scale
        scale = 0.99 / peak
        mic, near, echo, noise = mic * scale, near * scale, echo * scale, noise * scale
    meta = {
        "scenario": str(scenario),
        "ser_db": ser if scenario == "dt" else None,
        "snr_db": snr if noise_kind != "none" else None,
        "delay_ms": delay_ms,
        "rt60_s": rt60,
        "rir": rir_kind,
        "time_varying": varying,
        "nonlinearity": nonlinearity,
        "noise": noise_kind,
        "seed": seed,
        "split": split,
    }

    def f32(x: np.ndarray) -> np.ndarray:
        return x.astype(np.float32)

    return Call(f32(mic), f32(far), f32(near), f32(echo), f32(noise), str(scenario), meta)
