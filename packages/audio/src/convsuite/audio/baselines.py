"""Classical echo cancellers to compare against: NLMS, SpeexDSP MDF, WebRTC AEC3 (optional).

Every baseline takes the microphone and the far end at 16 kHz, float (samples,), with the far end
already delay-aligned by the same GCC-PHAT step the network uses (so that a filter of 128-256 ms
covers the echo path, whatever the 10-500 ms delay), and returns the output (samples,) float32.

- :func:`nlms`: partitioned-block frequency-domain NLMS (overlap-save, constrained gradient;
  Soo & Pang 1990, as in Haykin's "Adaptive Filter Theory", Sec. 8), well regularized: per-bin
  step normalized by the smoothed far-end power plus a floor (3 x its mean over bins, and the
  power of a -60 dBFS signal), step 0.3: with a per-bin normalization alone, bins where speech
  has little far-end energy and pauses in the far end made the filter diverge on simulated calls
  (smaller floors tried: 1e-3, 1e-2, 0.1, 1; 3 gave the highest ERLE without divergence).
- :func:`speex_mdf`: the SpeexDSP multi-delay block frequency-domain filter (``pyaec``), with
  its residual-echo suppressor and noise suppressor (``enable_preprocess``).
- :func:`webrtc_aec3`: WebRTC's AEC3 with its noise suppressor through ``aec-audio-processing``
  (the ``baselines`` extra; compiles from source): :func:`available_baselines` lists it only when
  importable.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["available_baselines", "nlms", "speex_mdf", "webrtc_aec3"]

_SILENCE = 1e-3  # far-end level (full scale, -60 dBFS) below which the step is held back
Baseline = Callable[[np.ndarray, np.ndarray], np.ndarray]


def nlms(
    mic: np.ndarray,
    far: np.ndarray,
    taps: int = 2048,
    block: int = 256,
    step: float = 0.3,
    smoothing: float = 0.9,
    regularization: float = 3.0,
) -> np.ndarray:
    """Partitioned-block frequency-domain NLMS echo canceller; returns the error signal.

    Args:
        mic, far: (samples,) microphone and aligned far end.
        taps: filter length (a multiple of ``block``); 2048 = 128 ms.
        block: block length B (FFT size 2B).
        step: normalized step size mu.
        smoothing: forgetting factor of the per-bin far-end power estimate.
        regularization: the step's floor in units of the mean (over bins) far-end power.
    """
    mic = np.asarray(mic, dtype=np.float64)
    far = np.asarray(far, dtype=np.float64)
    parts = taps // block
    blocks = -(-mic.size // block)
    d = np.pad(mic, (0, blocks * block - mic.size))
    x = np.pad(far, (block, blocks * block - far.size))
    bins = block + 1
    weights = np.zeros((parts, bins), dtype=complex)
    history = np.zeros((parts, bins), dtype=complex)
    power: np.ndarray | None = None
    out = np.zeros(blocks * block)
    for m in range(blocks):
        history = np.roll(history, 1, axis=0)
        history[0] = np.fft.rfft(x[m * block : m * block + 2 * block])
        estimate = np.fft.irfft(np.sum(weights * history, axis=0))[block:]
        error = d[m * block : (m + 1) * block] - estimate
        out[m * block : (m + 1) * block] = error
        spectrum = np.fft.rfft(np.concatenate([np.zeros(block), error]))
        current = np.sum(np.abs(history) ** 2, axis=0)
        power = current if power is None else smoothing * power + (1 - smoothing) * current
        floor = regularization * np.mean(power) + 2 * block * parts * _SILENCE**2
        gain = step * spectrum / (power + floor)
        gradient = np.fft.irfft(np.conj(history) * gain, axis=1)[:, :block]
        weights += np.fft.rfft(np.concatenate([gradient, np.zeros((parts, block))], axis=1))
    return out[: mic.size].astype(np.float32)


def _int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767).astype(np.int16)


def speex_mdf(
    mic: np.ndarray, far: np.ndarray, frame: int = 256, filter_length: int = 4096
) -> np.ndarray:
    """SpeexDSP MDF echo canceller (``pyaec``) with its preprocessor; 256-sample frames."""
    from pyaec import Aec

    canceller = Aec(frame, filter_length, 16000, True)
    mic16, far16 = _int16(mic), _int16(far)
    out = np.zeros(mic.size, dtype=np.float32)
    for start in range(0, mic.size - frame + 1, frame):
        chunk = canceller.cancel_echo(
            mic16[start : start + frame].tolist(), far16[start : start + frame].tolist()
        )
        out[start : start + frame] = np.asarray(chunk, dtype=np.float32) / 32767
    return out


def webrtc_aec3(mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    """WebRTC AEC3 + noise suppression (``aec-audio-processing``), 10 ms frames."""
    from aec_audio_processing import AudioProcessor

    processor = AudioProcessor(enable_aec=True, enable_ns=True, enable_agc=False)
    processor.set_stream_format(16000, 1)
    processor.set_reverse_stream_format(16000, 1)
    frame = 160
    mic16, far16 = _int16(mic), _int16(far)
    out = np.zeros(mic.size, dtype=np.float32)
    for start in range(0, mic.size - frame + 1, frame):
        processor.process_reverse_stream(far16[start : start + frame].tobytes())
        data = processor.process_stream(mic16[start : start + frame].tobytes())
        out[start : start + frame] = np.frombuffer(data, dtype=np.int16) / 32767
    return out


def available_baselines() -> dict[str, Baseline]:
    """The baselines that can run here, by table name (AEC3 only when its package is installed)."""
    baselines: dict[str, Baseline] = {"NLMS": nlms, "SpeexDSP": speex_mdf}
    try:
        import aec_audio_processing  # noqa: F401
    except ImportError:
        pass
    else:
        baselines["AEC3"] = webrtc_aec3
    return baselines
