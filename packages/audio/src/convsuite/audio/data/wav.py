"""WAV input and output with soundfile: 16 kHz mono float32, checked, resampled with a warning.

Signals are float32 arrays in [-1, 1] (full scale), shape (samples,), at :data:`SAMPLE_RATE` Hz.
"""

from __future__ import annotations

import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_path, check_budget

__all__ = [
    "MAX_LENGTH_MISMATCH_S",
    "MAX_WAV_SECONDS",
    "SAMPLE_RATE",
    "check_pair",
    "read_wav",
    "resample",
    "write_wav",
]

SAMPLE_RATE = 16_000
"""The rate the network and metrics work at, Hz."""
MAX_WAV_SECONDS = 3600.0
"""Longest recording read (1 hour at 16 kHz is 230 MB as float32)."""
MAX_LENGTH_MISMATCH_S = 1.0
"""Microphone and far-end recordings may differ in length by at most this much."""
_CLIP_LEVEL = 0.999


def resample(signal: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling (scipy ``resample_poly``, Kaiser window) from ``rate_in`` to ``rate_out``."""
    if rate_in == rate_out:
        return signal
    from scipy.signal import resample_poly

    ratio = Fraction(rate_out, rate_in).limit_denominator(1000)
    return resample_poly(signal, ratio.numerator, ratio.denominator).astype(np.float32)


def read_wav(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read a mono audio file as float32 (samples,) at ``sample_rate`` Hz.

    Another rate is resampled with a warning; samples at full scale give a clipping warning.

    Raises:
        InputError: missing or unreadable file, more than one channel, empty, all zeros,
            non-finite samples, or longer than :data:`MAX_WAV_SECONDS`.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such audio file")
    try:
        info = sf.info(str(path))
    except Exception as error:  # soundfile raises its own LibsndfileError / RuntimeError
        raise InputError(path, f"is not a readable audio file ({error})") from None
    if info.channels != 1:
        raise InputError(path, f"has {info.channels} channels; expected mono (1 channel)")
    check_budget(path, int(info.frames) * 4, "audio samples", int(MAX_WAV_SECONDS * 4 * 48_000))
    try:
        signal, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as error:
        raise InputError(path, f"is not a readable audio file ({error})") from None
    if signal.size == 0:
        raise InputError(path, "is empty (no samples)")
    if not np.isfinite(signal).all():
        raise InputError(path, "contains non-finite samples")
    if not np.any(signal):
        raise InputError(path, "is all zeros (silent)")
    if np.max(np.abs(signal)) >= _CLIP_LEVEL:
        warnings.warn(f"{path}: samples reach full scale (clipping)", stacklevel=2)
    if rate != sample_rate:
        warnings.warn(f"{path}: resampling from {rate} Hz to {sample_rate} Hz", stacklevel=2)
        signal = resample(signal, rate, sample_rate)
    return np.ascontiguousarray(signal, dtype=np.float32)


def check_pair(
    mic: np.ndarray,
    far: np.ndarray,
    mic_source: str | os.PathLike[str] = "microphone",
    far_source: str | os.PathLike[str] = "far end",
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, np.ndarray]:
    """Check a microphone / far-end pair and give both the microphone's length.

    The far end is cut or zero-padded to the microphone's length.

    Raises:
        InputError: not 1-D, empty, all zeros, non-finite, or lengths differing by more than
            :data:`MAX_LENGTH_MISMATCH_S`.
    """
    for signal, source in ((mic, mic_source), (far, far_source)):
        if signal.ndim != 1:
            raise InputError(source, f"must be mono (samples,), got shape {signal.shape}")
        if signal.size == 0:
            raise InputError(source, "is empty (no samples)")
        if not np.isfinite(signal).all():
            raise InputError(source, "contains non-finite samples")
        if not np.any(signal):
            raise InputError(source, "is all zeros (silent)")
    difference = abs(mic.size - far.size) / sample_rate
    if difference > MAX_LENGTH_MISMATCH_S:
        raise InputError(
            far_source,
            f"length {far.size / sample_rate:.2f} s differs from the microphone's "
            f"{mic.size / sample_rate:.2f} s by more than {MAX_LENGTH_MISMATCH_S:g} s",
        )
    far = far[: mic.size] if far.size >= mic.size else np.pad(far, (0, mic.size - far.size))
    return mic.astype(np.float32), far.astype(np.float32)


def write_wav(
    path: str | os.PathLike[str], signal: np.ndarray, sample_rate: int = SAMPLE_RATE
) -> Path:
    """Write mono float32 (samples,) as 16-bit PCM WAV, atomically; values beyond +-1 are clipped."""
    import soundfile as sf

    path = Path(path)
    data = np.clip(np.asarray(signal, dtype=np.float32), -1.0, 1.0)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), data, sample_rate, subtype="PCM_16", format="WAV")
    return path
