"""The ``aec`` command line: ``enhance``, ``simulate``, ``train``, ``evaluate``.

Runs through :func:`convsuite.core_ops.cli.run`: bad input (a missing or unreadable WAV, stereo
where mono is needed, empty or all-zero signals, microphone and far end differing in length by more
than a second, an output that would replace an input) prints one ``error:`` line and exits with
status 2, and no output file is written. Clipping and resampling are warnings. This module imports
neither numpy nor torch: each command imports its pipeline when it runs, so ``--help`` is fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from convsuite.core_ops.cli import (
    Accelerator,
    BatchSize,
    Device,
    Devices,
    NumNodes,
    Precision,
    Seed,
    Strategy,
    guard_outputs,
    recipe_command,
    run,
    torch_device,
    trainer_settings,
)
from convsuite.core_ops.errors import InputError

__all__ = ["app", "main"]

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="Acoustic echo cancellation and noise suppression with a complex-valued D3Net.",
)
_WEIGHTS_HELP = "Bundled weights name (d3aec_small) or a .safetensors file from `aec train`."


@app.command(
    epilog="Example: aec enhance mic.wav farend.wav -o near.wav --stream",
)
def enhance(
    mic: Annotated[Path, typer.Argument(help="Microphone recording (mono WAV).")],
    farend: Annotated[Path, typer.Argument(help="Far-end reference (mono WAV).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output WAV (near-end speech).")],
    stream: Annotated[
        bool,
        typer.Option(help="Process hop by hop (16 ms, one thread) as a real-time call would."),
    ] = False,
    delay_ms: Annotated[
        float | None,
        typer.Option(help="Far-end to microphone delay; default: estimated by GCC-PHAT."),
    ] = None,
    weights: Annotated[str | None, typer.Option(help=_WEIGHTS_HELP)] = None,
    precision: Precision = "fp32",
    device: Device = "cpu",
) -> None:
    """Remove echo and noise from MIC given the far-end signal FAREND (16 kHz; others resampled)."""
    guard_outputs([out], [mic, farend])
    device = torch_device(device)
    from convsuite.audio.data.wav import check_pair, read_wav, write_wav
    from convsuite.audio.infer import EchoCanceller, estimate_delay

    mic_signal, far_signal = check_pair(read_wav(mic), read_wav(farend), mic, farend)
    canceller = EchoCanceller.from_pretrained(weights, device, precision)
    delay = estimate_delay(mic_signal, far_signal) if delay_ms is None else int(delay_ms * 16)
    if stream:
        import numpy as np
        import torch

        torch.set_num_threads(1)  # a 16-ms frame is too little work to share between threads

        streamer = canceller.stream(delay)
        hop = 256
        parts = [
            streamer.process(mic_signal[i : i + hop], far_signal[i : i + hop])
            for i in range(0, mic_signal.size, hop)
        ]
        near = np.concatenate([*parts, streamer.flush()])
    else:
        near = canceller.process(mic_signal, far_signal, delay=delay)
    write_wav(out, near)
    typer.echo(f"{out}: {near.size / 16000:.2f} s, far-end delay {delay / 16:.0f} ms", err=True)


@app.command(epilog="Example: aec simulate --seed 0 --count 12 --out calls/")
def simulate(
    out: Annotated[Path, typer.Option("--out", help="Folder for the AEC-Challenge layout.")],
    seed: Seed = 0,
    count: Annotated[int, typer.Option(min=1, help="Calls (rotating fst, nst, dt).")] = 6,
    seconds: Annotated[float, typer.Option(min=1.0, max=60.0, help="Call length.")] = 6.0,
    split: Annotated[str, typer.Option(help="train or test (held-out draws).")] = "test",
) -> None:
    """Write simulated calls in the AEC-Challenge synthetic layout (with meta.csv)."""
    if split not in ("train", "test"):
        raise InputError("--split", f"must be train or test, got {split!r}")
    from convsuite.audio.data.challenge import write_challenge_set

    meta = write_challenge_set(out, seed=seed, count=count, seconds=seconds, split=split)
    typer.echo(f"{out}: {count} calls ({meta})", err=True)


@app.command(
    epilog="Example: aec train --out runs/aec --weights runs/aec/d3aec.safetensors --preset small"
)
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints, metrics.csv).")],
    weights: Annotated[Path, typer.Option(help="Weights file to write (.safetensors).")],
    preset: Annotated[str, typer.Option(help="paper (354K parameters), small or tiny.")] = "small",
    calls: Annotated[int, typer.Option(min=1, help="Simulated calls per epoch.")] = 512,
    seconds: Annotated[float, typer.Option(min=1.0, help="Call length.")] = 2.0,
    epochs: Annotated[int, typer.Option(min=1)] = 4,
    lr: Annotated[float, typer.Option(min=0.0)] = 2e-3,
    max_minutes: Annotated[float | None, typer.Option(help="Stop fitting after this long.")] = None,
    steps_per_epoch: Annotated[
        int | None, typer.Option(min=1, help="Batches per epoch (drawn from the calls).")
    ] = None,
    fst_share: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Share of far-end single talk; the rest 1:3 nst:dt (None: 0.2)."
        ),
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="Start from these weights (.safetensors, same preset).")
    ] = None,
    residual_weight: Annotated[
        float, typer.Option(min=0.0, help="Weight of the residual-energy (dB) loss term.")
    ] = 0.01,
    distortion_weight: Annotated[
        float,
        typer.Option(min=0.0, help="Weight of the near-end speech-distortion loss term."),
    ] = 0.0,
    residual_floor_db: Annotated[
        float,
        typer.Option(max=0.0, help="dB below the mic where the residual term stops pulling."),
    ] = -60.0,
    batch_size: BatchSize = 4,
    seed: Seed = 0,
    accelerator: Accelerator = "cpu",
    devices: Devices = "auto",
    strategy: Strategy = "auto",
    num_nodes: NumNodes = 1,
) -> None:
    """Train the D3Net echo canceller on simulated calls; write weights + model card."""
    if weights.suffix != ".safetensors":
        raise InputError(weights, "weights are written as .safetensors")
    if init is not None and not init.is_file():
        raise InputError(init, "no such weights file")
    mix = None if fst_share is None else (fst_share, (1 - fst_share) / 4, 3 * (1 - fst_share) / 4)
    settings = trainer_settings(accelerator, devices, strategy, num_nodes)
    import sys

    from convsuite.audio.train import train_network
    from convsuite.core_ops.hub import model_config

    path = train_network(
        out,
        weights,
        recipe_command(),
        model_config("d3aec", preset),
        train_calls=calls,
        seconds=seconds,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        max_minutes=max_minutes,
        steps_per_epoch=steps_per_epoch,
        mix=mix,
        init=init,
        residual_weight=residual_weight,
        distortion_weight=distortion_weight,
        residual_floor_db=residual_floor_db,
        progress=sys.stderr.isatty(),
        **settings,
    )
    typer.echo(f"{path}", err=True)


@app.command(
    epilog="Example: aec simulate --seed 0 --out calls/ && aec evaluate calls/ --out report/"
)
def evaluate(
    folder: Annotated[Path, typer.Argument(help="AEC-Challenge synthetic folder (meta.csv).")],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for evaluation.md/json and spectrogram PNGs.")
    ],
    weights: Annotated[str | None, typer.Option(help=_WEIGHTS_HELP)] = None,
    aecmos: Annotated[bool, typer.Option(help="Also score AECMOS (speechmos).")] = True,
    figures: Annotated[int, typer.Option(min=0, help="Spectrogram PNGs: first N calls.")] = 3,
    device: Device = "cpu",
) -> None:
    """Metrics table of ours vs NLMS, SpeexDSP and (when installed) WebRTC AEC3, per scenario."""
    guard_outputs([out], [folder])
    device = torch_device(device)
    import json

    from convsuite.audio.baselines import available_baselines
    from convsuite.audio.data.challenge import read_challenge_set
    from convsuite.audio.evaluate import (
        EXACT_ECHO_REMOVAL,
        OURS,
        UNPROCESSED,
        evaluate_calls,
        format_table,
        summarize,
    )
    from convsuite.audio.figures import spectrograms_figure
    from convsuite.audio.infer import EchoCanceller
    from convsuite.core_ops.figures import save_figure
    from convsuite.core_ops.io import atomic_write

    calls = read_challenge_set(folder)
    canceller = EchoCanceller.from_pretrained(weights, device)
    baselines = available_baselines()
    net = canceller.network
    notes = [
        f"{OURS}: {net.num_parameters:,} parameters, algorithmic latency "
        f"{1000 * net.config.n_fft / net.config.sample_rate:g} ms (one {net.config.n_fft}-sample "
        "window; causal network); RTF: processing seconds per audio second, offline."
    ]
    if "AEC3" not in baselines:
        notes.append(
            "WebRTC AEC3: not installed here (pip install 'convsuite-audio[baselines]'; it "
            "compiles from source), so its rows are absent."
        )
    if any(call.echo is not None for call in calls):
        notes.append(
            f"{EXACT_ECHO_REMOVAL}: the microphone less the call's known echo, a perfect echo "
            "canceller that leaves the near end's noise: the scale of the other rows, not a method."
        )
    try:
        import pesq  # noqa: F401
    except ImportError:
        notes.append("PESQ-WB: the pesq package is not installed, so PESQ is absent.")
    results = evaluate_calls(calls, canceller, baselines, aecmos, keep_outputs=figures > 0)
    summary = summarize(results)
    table = format_table(summary, notes)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "evaluation.md") as handle:
        handle.write(table)
    record = {
        "summary": summary,
        "calls": [
            {"fileid": r.fileid, "scenario": r.scenario, "delay_ms": r.delay_ms, "scores": r.scores}
            for r in results
        ],
        "weights": weights or "d3aec_small (bundled)",
        "notes": notes,
    }
    with atomic_write(out / "evaluation.json") as handle:
        handle.write(json.dumps(record, indent=2, allow_nan=True) + "\n")
    for call, result in list(zip(calls, results, strict=True))[:figures]:
        panels = {"microphone": call.mic, "far end": call.far}
        panels.update({k: v for k, v in result.outputs.items() if k != UNPROCESSED})
        if call.near is not None and call.scenario != "fst":
            panels["near-end speech (target)"] = call.near
        figure = spectrograms_figure(panels, f"call {call.fileid} ({call.scenario})")
        save_figure(figure, out / f"call{call.fileid}_{call.scenario}_spectrograms.png")
    typer.echo(table)
    typer.echo(f"{out}: {len(calls)} calls scored ({OURS} vs {', '.join(baselines)})", err=True)


def main() -> None:
    """Console script ``aec``."""
    run(app)
