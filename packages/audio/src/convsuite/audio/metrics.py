"""Echo-cancellation and speech-quality metrics: ERLE, PESQ-WB, STOI, SI-SDR, AECMOS.

All take 16 kHz float (samples,) arrays. PESQ (ITU-T P.862.2 wideband, the ``pesq`` package), STOI
(Taal et al. 2011, ``pystoi``) and AECMOS (Purin et al., ICASSP 2022, ``speechmos``'s ONNX model)
come from the field's libraries; each returns NaN where the metric is undefined (silent or
non-finite signals, too short for PESQ) instead of raising or hanging.
"""

from __future__ import annotations

import math

import numpy as np

from convsuite.audio.data.wav import SAMPLE_RATE

__all__ = ["CONVERGENCE_S", "aecmos", "erle_db", "pesq_wb", "si_sdr_db", "stoi"]

CONVERGENCE_S = 1.0
"""ERLE is measured after this much of the call (adaptive filters converge first)."""
_EPS = 1e-12


def _usable(*signals: np.ndarray) -> bool:
    return all(
        s.size > 0 and np.isfinite(s).all() and float(np.max(np.abs(s))) > 1e-6 for s in signals
    )


def erle_db(mic: np.ndarray, output: np.ndarray, skip_s: float = CONVERGENCE_S) -> float:
    """Echo return loss enhancement ``10 log10(sum mic^2 / sum out^2)`` in far-end single talk, dB.

    Measured after ``skip_s`` seconds. NaN when the microphone is silent there.
    """
    start = int(skip_s * SAMPLE_RATE)
    mic, output = mic[start:].astype(np.float64), output[start:].astype(np.float64)
    if not _usable(mic) or not np.isfinite(output).all():
        return math.nan
    return float(10 * np.log10(np.sum(mic**2) / (np.sum(output**2) + _EPS)))


def si_sdr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant SDR (Le Roux et al., ICASSP 2019), dB; NaN for a silent reference."""
    reference = reference.astype(np.float64) - np.mean(reference)
    estimate = estimate.astype(np.float64) - np.mean(estimate)
    if not _usable(reference) or not np.isfinite(estimate).all():
        return math.nan
    target = np.dot(estimate, reference) / (np.dot(reference, reference) + _EPS) * reference
    residual = estimate - target
    return float(10 * np.log10((np.sum(target**2) + _EPS) / (np.sum(residual**2) + _EPS)))


def pesq_wb(reference: np.ndarray, degraded: np.ndarray) -> float:
    """Wideband PESQ (P.862.2) MOS-LQO; NaN when undefined or ``pesq`` is not installed."""
    if not _usable(reference, degraded) or reference.size < SAMPLE_RATE // 4:
        return math.nan
    try:
        from pesq import PesqError, pesq
    except ImportError:
        return math.nan
    try:
        return float(
            pesq(SAMPLE_RATE, reference.astype(np.float32), degraded.astype(np.float32), "wb")
        )
    except PesqError:  # no utterance detected, and similar
        return math.nan


def stoi(reference: np.ndarray, degraded: np.ndarray) -> float:
    """Short-time objective intelligibility (0..1); NaN for silent or non-finite signals."""
    if not _usable(reference, degraded):
        return math.nan
    from pystoi import stoi as _stoi

    value = float(_stoi(reference, degraded, SAMPLE_RATE, extended=False))
    return value if math.isfinite(value) else math.nan


def aecmos(
    far: np.ndarray, mic: np.ndarray, enhanced: np.ndarray, scenario: str
) -> tuple[float, float]:
    """AECMOS (echo MOS, degradation MOS), 1..5, from the 16 kHz model shipped by ``speechmos``.

    Args:
        far: far-end reference (the loopback), mic: microphone, enhanced: the output.
        scenario: ``"fst"`` (far-end single talk), ``"nst"`` or ``"dt"``.
    """
    if not _usable(far, mic) or not np.isfinite(enhanced).all():
        return math.nan, math.nan
    from speechmos import aecmos as _aecmos

    talk = {"fst": "st", "nst": "nst", "dt": "dt"}[scenario]
    clip = [np.clip(s.astype(np.float32), -1.0, 1.0) for s in (far, mic, enhanced)]
    result = _aecmos.run({"lpb": clip[0], "mic": clip[1], "enh": clip[2]}, SAMPLE_RATE, talk)
    return float(result["echo_mos"]), float(result["deg_mos"])
