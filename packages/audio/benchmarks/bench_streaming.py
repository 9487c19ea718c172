"""Real-time factor of the echo canceller on one CPU thread: streaming (hop by hop) vs offline.

Issue 16's target: real-time factor <= 0.05 on one core in streaming mode, with <= 32 ms
algorithmic latency. Prints, per preset, the median seconds to process a 10-s simulated
double-talk call offline (the baseline, in the same process) and hop by hop through
:class:`StreamingAEC` (256-sample hops, one network call per 16-ms frame), their ratio, and the
real-time factors (processing time / audio time). The small preset runs the bundled weights; the
paper preset (356K parameters) runs freshly initialized weights (speed does not depend on them).

    OMP_NUM_THREADS=1 PYTHONPATH=shared .venv/bin/python packages/audio/benchmarks/bench_streaming.py
"""

from __future__ import annotations

import numpy as np
import torch
from convsuite_dev.bench import Comparison, median_seconds, print_table

from convsuite.audio.data import simulate_call
from convsuite.audio.infer import EchoCanceller
from convsuite.audio.model import D3AEC
from convsuite.audio.stft import HOP, N_FFT
from convsuite.core_ops.hub import create_model

SECONDS = 10.0
TARGET_RTF = 0.05


def _stream(canceller: EchoCanceller, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    stream = canceller.stream(delay=0)
    parts = [stream.process(mic[i : i + HOP], far[i : i + HOP]) for i in range(0, mic.size, HOP)]
    return np.concatenate([*parts, stream.flush()])


def main() -> None:
    torch.set_num_threads(1)
    call = simulate_call(0, SECONDS, scenario="dt", split="test")
    nets: dict[str, D3AEC] = {
        "small (bundled)": D3AEC.from_pretrained(),
        "paper (354K)": create_model("d3aec", preset="paper").eval(),
    }
    rows, rtfs = [], []
    for name, net in nets.items():
        canceller = EchoCanceller(net)
        offline = median_seconds(lambda c=canceller: c.process(call.mic, call.far, 0), repeats=3)
        streaming = median_seconds(lambda c=canceller: _stream(c, call.mic, call.far), repeats=3)
        reference = canceller.process(call.mic, call.far, 0)
        error = float(np.abs(_stream(canceller, call.mic, call.far) - reference).max())
        rel = error / float(np.abs(reference).max())
        rows.append(Comparison(f"{name} stream vs offline", streaming, offline, error=rel))
        rtfs.append((name, net.num_parameters, streaming / SECONDS, offline / SECONDS))
    print_table(f"D3AEC on a {SECONDS:g}-s call, one thread", rows, "offline")
    print(f"\nalgorithmic latency: {N_FFT} samples = {1000 * N_FFT / 16000:g} ms (target <= 32 ms)")
    for name, params, stream_rtf, offline_rtf in rtfs:
        verdict = "met" if stream_rtf <= TARGET_RTF else "MISSED"
        print(
            f"{name:<18} {params:>8,} params  streaming RTF {stream_rtf:.3f} "
            f"(target <= {TARGET_RTF}: {verdict})  offline RTF {offline_rtf:.3f}"
        )


if __name__ == "__main__":
    main()
