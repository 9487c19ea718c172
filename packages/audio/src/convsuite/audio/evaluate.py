"""Evaluation: ours against the classical baselines on the same calls, per scenario.

For each call the far end is aligned once (GCC-PHAT, :func:`~convsuite.audio.infer.estimate_delay`)
and every method gets the same aligned far end. Metrics (see :mod:`convsuite.audio.metrics`):
ERLE after the first second in far-end single talk; PESQ-WB, STOI and SI-SDR against the near-end
speech in double talk and near-end single talk; AECMOS echo and degradation MOS in every scenario;
processing time as a real-time factor (one process, wall clock, whatever threads torch has).

Where a call's echo is known (simulated calls), the row :data:`EXACT_ECHO_REMOVAL` scores the
microphone less that echo: an echo canceller that is perfect and leaves the near end's noise as
it is. It is the scale the other rows sit on, not a method: AECMOS echo rates the residual's
character more than its level (the same output 20 dB quieter scored the same on 39 of the 48
far-end single-talk calls of the README's two held-out draws, the rest within 0.31), so in
far-end single talk this row scored 4.50 and 4.53 on those draws, where the target is 4.5 (a
silent output 4.59 and 4.56).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from convsuite.audio.baselines import available_baselines
from convsuite.audio.data.challenge import ChallengeCall
from convsuite.audio.data.wav import SAMPLE_RATE
from convsuite.audio.infer import EchoCanceller, align_far, estimate_delay
from convsuite.audio.metrics import aecmos, erle_db, pesq_wb, si_sdr_db, stoi

__all__ = [
    "EXACT_ECHO_REMOVAL",
    "OURS",
    "UNPROCESSED",
    "CallResult",
    "evaluate_calls",
    "format_table",
    "score_call",
    "summarize",
]

OURS = "D3AEC (ours)"
UNPROCESSED = "unprocessed mic"
EXACT_ECHO_REMOVAL = "echo removed exactly (mic - echo)"
_METRICS = ("erle_db", "pesq_wb", "stoi", "si_sdr_db", "aecmos_echo", "aecmos_deg", "rtf")


@dataclass
class CallResult:
    """Scores of every method on one call, and the outputs (for figures)."""

    fileid: str
    scenario: str
    delay_ms: float
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    outputs: dict[str, np.ndarray] = field(default_factory=dict)


def _unprocessed(mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    """The microphone signal itself: the reference row of the table."""
    return mic


def score_call(call: ChallengeCall, output: np.ndarray, with_aecmos: bool) -> dict[str, float]:
    """The metrics of one method's ``output`` (samples, 16 kHz) on ``call``, NaN where they do not
    apply: ERLE in far-end single talk; PESQ-WB, STOI and SI-SDR against the near end where it
    is known; AECMOS echo and degradation when ``with_aecmos``."""
    nan = math.nan
    scores = dict.fromkeys(_METRICS, nan)
    if call.scenario == "fst":
        scores["erle_db"] = erle_db(call.mic, output)
    elif call.near is not None:
        scores["pesq_wb"] = pesq_wb(call.near, output)
        scores["stoi"] = stoi(call.near, output)
        scores["si_sdr_db"] = si_sdr_db(call.near, output)
    if with_aecmos:
        scores["aecmos_echo"], scores["aecmos_deg"] = aecmos(
            call.far, call.mic, output, call.scenario
        )
    return scores


def evaluate_calls(
    calls: Sequence[ChallengeCall],
    canceller: EchoCanceller,
    baselines: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] | None = None,
    with_aecmos: bool = True,
    keep_outputs: bool = False,
) -> list[CallResult]:
    """Run ours, ``baselines`` (default: :func:`available_baselines`) and no processing; score
    them, and :data:`EXACT_ECHO_REMOVAL` where the call's echo is known.

    Args:
        calls: calls with near-end references where PESQ/STOI/SI-SDR are wanted.
        canceller: our pipeline.
        baselines: name -> function(mic, aligned far) -> output.
        with_aecmos: also run AECMOS (about 0.1 s per call and method).
        keep_outputs: keep every method's output signal in the results (for figures).
    """
    methods = {
        OURS: None,
        **(available_baselines() if baselines is None else baselines),
        UNPROCESSED: _unprocessed,
    }
    results = []
    for call in calls:
        delay = estimate_delay(call.mic, call.far)
        far = align_far(call.far, delay)
        result = CallResult(call.fileid, call.scenario, 1000 * delay / SAMPLE_RATE)
        for name, method in methods.items():
            start = time.perf_counter()
            if method is None:
                output = canceller.process(call.mic, call.far, delay=delay)
            else:
                output = method(call.mic, far)
            elapsed = time.perf_counter() - start
            scores = score_call(call, output, with_aecmos)
            scores["rtf"] = elapsed / (call.mic.size / SAMPLE_RATE)
            result.scores[name] = scores
            if keep_outputs:
                result.outputs[name] = output
        if call.echo is not None:  # the reference row (module docstring); no processing time
            exact = score_call(call, call.mic - call.echo, with_aecmos)
            result.scores[EXACT_ECHO_REMOVAL] = {**exact, "rtf": math.nan}
        results.append(result)
    return results


def summarize(results: Sequence[CallResult]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean of each metric per scenario and method (NaN-aware): ``{scenario: {method: {metric}}}``."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in sorted({r.scenario for r in results}):
        group = [r for r in results if r.scenario == scenario]
        summary[scenario] = {}
        for method in dict.fromkeys(m for r in group for m in r.scores):  # first-seen order
            scored = [r.scores[method] for r in group if method in r.scores]
            values = {}
            for metric in _METRICS:
                column = np.array([scores[metric] for scores in scored], dtype=float)
                finite = column[np.isfinite(column)]
                values[metric] = float(finite.mean()) if finite.size else math.nan
            values["calls"] = float(len(scored))
            summary[scenario][method] = values
    return summary


def format_table(summary: dict[str, dict[str, dict[str, float]]], notes: Sequence[str] = ()) -> str:
    """A Markdown table of :func:`summarize` output (``-`` where a metric does not apply)."""
    header = "| scenario | method | calls | ERLE dB | PESQ-WB | STOI | SI-SDR dB | AECMOS echo | AECMOS deg | RTF |"
    lines = [header, "|" + "---|" * 10]
    for scenario, methods in summary.items():
        for method, v in methods.items():
            cells = [
                f"{v[m]:.2f}" if math.isfinite(v[m]) else "-"
                for m in ("erle_db", "pesq_wb", "stoi", "si_sdr_db", "aecmos_echo", "aecmos_deg")
            ]
            rtf = f"{v['rtf']:.3f}" if math.isfinite(v["rtf"]) else "-"
            lines.append(
                f"| {scenario} | {method} | {int(v['calls'])} | {' | '.join(cells)} | {rtf} |"
            )
    lines.extend(f"\n{note}" for note in notes)
    return "\n".join(lines) + "\n"
