"""audio's demo (entry point ``audio`` of ``convsuite.demos``): cancel echo in simulated calls.

Simulates three held-out 3-s calls (far-end single talk, double talk, near-end single talk; the
test split: talkers, rooms and echo paths the bundled network never saw), runs the bundled D3AEC
and the NLMS and SpeexDSP baselines, writes before/after spectrograms, the WAV files, and
``players.html`` with an audio player per signal (the index page of ``convsuite-demo`` shows
figures only; open that page beside it to listen).
"""

from __future__ import annotations

import html
from pathlib import Path

from convsuite.audio.data.challenge import ChallengeCall
from convsuite.audio.data.simulate import simulate_call
from convsuite.audio.data.wav import write_wav
from convsuite.audio.evaluate import UNPROCESSED, evaluate_calls, summarize
from convsuite.audio.figures import spectrograms_figure
from convsuite.audio.infer import EchoCanceller
from convsuite.core_ops.demo import DemoResult
from convsuite.core_ops.figures import save_figure
from convsuite.core_ops.io import atomic_write

DEMO_SEED = 7
DEMO_SECONDS = 3.0


def _players(out_dir: Path, wavs: dict[str, dict[str, Path]]) -> Path:
    rows = []
    for call, files in wavs.items():
        cells = "".join(
            f"<td>{html.escape(name)}<br><audio controls src='{html.escape(path.name)}'></audio></td>"
            for name, path in files.items()
        )
        rows.append(f"<tr><th>{html.escape(call)}</th>{cells}</tr>")
    page = (
        "<!doctype html><meta charset='utf-8'><title>convsuite-audio: listen</title>"
        "<h1>Echo cancellation on simulated calls</h1><table>" + "".join(rows) + "</table>\n"
    )
    with atomic_write(out_dir / "players.html") as handle:
        handle.write(page)
    return out_dir / "players.html"


def run(out_dir: Path) -> DemoResult:
    """Simulate, enhance with the bundled network and the baselines, write figures and audio."""
    out_dir = Path(out_dir)
    canceller = EchoCanceller.from_pretrained()
    calls = []
    for i, scenario in enumerate(("fst", "dt", "nst")):
        call = simulate_call(DEMO_SEED + i, DEMO_SECONDS, scenario=scenario, split="test")
        calls.append(
            ChallengeCall(str(i), call.mic, call.far, call.near, call.echo, scenario, call.meta)
        )
    results = evaluate_calls(calls, canceller, with_aecmos=False, keep_outputs=True)
    figures, wavs = [], {}
    for call, result in zip(calls, results, strict=True):
        outputs = {k: v for k, v in result.outputs.items() if k != UNPROCESSED}
        panels = {"microphone": call.mic, "far end": call.far, **outputs}
        if call.scenario != "fst":
            panels["near-end speech (target)"] = call.near
        figure = spectrograms_figure(panels, f"{call.scenario}: before and after")
        figures.append(save_figure(figure, out_dir / f"audio_{call.scenario}_spectrograms.png"))
        files = {}
        for name, signal in panels.items():
            stem = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
            files[name] = write_wav(out_dir / f"{call.scenario}_{stem}.wav", signal)
        wavs[call.scenario] = files
    _players(out_dir, wavs)
    summary = {
        scenario: {
            method: {k: round(v, 3) for k, v in scores.items() if k in ("erle_db", "pesq_wb")}
            for method, scores in methods.items()
        }
        for scenario, methods in summarize(results).items()
    }
    return DemoResult(
        title="Joint echo cancellation and noise suppression with a complex-valued D3Net",
        summary=summary,
        figures=figures,
        description=(
            "Three held-out simulated 3-s calls (far-end single talk, double talk, near-end "
            "single talk) through the bundled causal D3AEC (small preset, trained 75 min on one "
            "CPU thread by the recipe) and the NLMS and SpeexDSP baselines (and WebRTC AEC3 "
            "where installed). ERLE (dB, far-end single talk) and PESQ-WB (double and near-end "
            "single talk) per method, and for the microphone less its known echo (a perfect echo "
            "canceller that leaves the noise: the scale); players.html in this folder plays "
            "every signal."
        ),
    )
