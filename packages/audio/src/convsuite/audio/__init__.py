"""convsuite-audio: joint acoustic echo cancellation and noise suppression with a complex D3Net.

The names below load their module on first use (PEP 562), so ``import convsuite.audio`` (and the
``aec`` command line's ``--help``) costs no torch, scipy or matplotlib import.
"""

from __future__ import annotations

from convsuite.core_ops.lazy import lazy_exports

_EXPORTS = {
    "D3AEC": "convsuite.audio.model",
    "D3AECConfig": "convsuite.audio.model",
    "EchoCanceller": "convsuite.audio.infer",
    "StreamingAEC": "convsuite.audio.infer",
    "aecmos": "convsuite.audio.metrics",
    "available_baselines": "convsuite.audio.baselines",
    "erle_db": "convsuite.audio.metrics",
    "estimate_delay": "convsuite.audio.infer",
    "evaluate_calls": "convsuite.audio.evaluate",
    "nlms": "convsuite.audio.baselines",
    "pesq_wb": "convsuite.audio.metrics",
    "read_challenge_set": "convsuite.audio.data",
    "read_wav": "convsuite.audio.data",
    "si_sdr_db": "convsuite.audio.metrics",
    "simulate_call": "convsuite.audio.data",
    "spectrograms_figure": "convsuite.audio.figures",
    "speex_mdf": "convsuite.audio.baselines",
    "stoi": "convsuite.audio.metrics",
    "summarize": "convsuite.audio.evaluate",
    "write_challenge_set": "convsuite.audio.data",
    "write_wav": "convsuite.audio.data",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
