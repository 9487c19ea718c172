"""Real-time factor of the echo canceller on one CPU thread: streaming (hop by hop) vs baselines.

Issue 16's target: real-time factor <= 0.05 on one core in streaming mode, with <= 32 ms
algorithmic latency. For a 10-s simulated double-talk call, per preset, this prints the median
time of :class:`StreamingAEC` (256-sample hops, one :class:`~convsuite.audio.framewise.
FrameProgram` step per 16-ms frame) against, in the same process, offline processing of the
whole call (the baseline: the network's batched convolutions, no per-frame work); their ratio,
the streamed output's error against offline; and the real-time factors (processing time / audio
time) both as wall time and as the process's CPU time (one thread: the time it had a core; on a
loaded machine wall time also counts the time other processes held the core). The
small preset runs the bundled weights; the paper preset (356K parameters) runs freshly
initialized weights (speed does not depend on them).

    OMP_NUM_THREADS=1 PYTHONPATH=shared .venv/bin/python packages/audio/benchmarks/bench_streaming.py
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from convsuite_dev.bench import Comparison, print_table

from convsuite.audio.data import simulate_call
from convsuite.audio.infer import EchoCanceller
from convsuite.audio.model import D3AEC
from convsuite.audio.stft import HOP, N_FFT
from convsuite.core_ops.hub import create_model

SECONDS = 10.0
TARGET_RTF = 0.05


def _times(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _stream(canceller: EchoCanceller, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    stream = canceller.stream(delay=0)
    parts = [stream.process(mic[i : i + HOP], far[i : i + HOP]) for i in range(0, mic.size, HOP)]
    return np.concatenate([*parts, stream.flush()])


def main() -> None:
    torch.set_num_threads(1)
    call = simulate_call(0, SECONDS, scenario="dt", split="test")
    presets: dict[str, tuple[D3AEC, int]] = {
        "small (bundled)": (D3AEC.from_pretrained(), 3),
        "paper (354K)": (create_model("d3aec", preset="paper").eval(), 1),
    }
    rows, rtfs = [], []
    for name, (net, repeats) in presets.items():
        canceller = EchoCanceller(net)
        reference = canceller.process(call.mic, call.far, 0)
        scale = float(np.abs(reference).max())
        streamed = _stream(canceller, call.mic, call.far)
        error = float(np.abs(streamed - reference).max()) / scale
        stream_s, stream_cpu = _times(lambda c=canceller: _stream(c, call.mic, call.far), repeats)
        offline_s, offline_cpu = _times(
            lambda c=canceller: c.process(call.mic, call.far, 0), repeats
        )
        rows.append(Comparison(f"{name} stream vs offline", stream_s, offline_s, error=error))
        rtfs.append((name, net.num_parameters, repeats, stream_s, stream_cpu, offline_cpu))
    title = f"D3AEC on a {SECONDS:g}-s call, one thread (ratio = baseline / ours; error vs offline)"
    print_table(title, rows, "baseline")
    print(f"\nalgorithmic latency: {N_FFT} samples = {1000 * N_FFT / 16000:g} ms (target <= 32 ms)")
    print(f"streaming real-time factor (target <= {TARGET_RTF}), median of the repeats:")
    for name, params, repeats, wall, cpu, offline_cpu in rtfs:
        verdicts = ["yes" if s / SECONDS <= TARGET_RTF else "NO" for s in (wall, cpu)]
        print(
            f"{name:<16}{params:>9,} params, {repeats} run(s): wall RTF {wall / SECONDS:.3f} "
            f"(target: {verdicts[0]}), CPU RTF {cpu / SECONDS:.3f} (target: {verdicts[1]}); "
            f"offline CPU RTF {offline_cpu / SECONDS:.3f}"
        )


if __name__ == "__main__":
    main()
