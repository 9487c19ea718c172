"""Where a far-end single-talk call's ERLE goes: the echo's share against the noise's.

ERLE (``metrics.erle_db``) counts everything the output keeps, so in a noisy far-end single-talk
call it is capped by how much of the near-end noise the noise mask removes, whatever the echo
mask does. Per far-end single-talk call of an AEC-Challenge folder with ``echo_signal/`` (``aec
simulate`` output) this runs :meth:`EchoCanceller.process` three times, on the microphone, on
the echo alone and on the rest of the microphone (its noise, ``mic - echo``), and prints:

- ``ERLE``: the call's, as ``aec evaluate`` reports it;
- ``echo only``: the ERLE when the microphone held the echo and no noise;
- ``noise only``: how many dB the canceller takes off the noise alone;
- ``echo/noise``: the echo's power over the noise's in the microphone, dB;
- ``out excess``: the call's output power over the sum of the two single outputs' powers, dB
  (0 where the two are processed independently; > 0 where together they keep more than apart).

A call whose ``ERLE`` sits far below ``echo only`` and near ``noise only + echo/noise`` is
noise-limited, not echo-limited.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python packages/audio/benchmarks/decompose_erle.py FOLDER
[--weights W]`` (a few seconds per call).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from convsuite.audio.data.challenge import read_challenge_set
from convsuite.audio.data.wav import SAMPLE_RATE
from convsuite.audio.infer import EchoCanceller
from convsuite.audio.metrics import CONVERGENCE_S, erle_db


def _power_db(signal: np.ndarray) -> float:
    """Energy after the convergence time, dB."""
    tail = signal[int(CONVERGENCE_S * SAMPLE_RATE) :].astype(np.float64)
    return float(10 * np.log10(np.sum(tail**2) + 1e-20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="AEC-Challenge folder from `aec simulate`")
    parser.add_argument("--weights", default=None, help="weights (default: bundled)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    canceller = EchoCanceller.from_pretrained(args.weights)
    print(f"{args.folder}, weights {args.weights or 'bundled'}: far-end single talk, dB")
    print("fileid | noise (SNR)        | ERLE  | echo only | noise only | echo/noise | out excess")
    for call in read_challenge_set(args.folder):
        if call.scenario != "fst" or call.echo is None:
            continue
        noise, out = call.mic - call.echo, canceller.process(call.mic, call.far)
        if not np.any(noise):  # a noiseless call: its ERLE is the echo's
            print(f"{call.fileid:>6} | none               | {erle_db(call.mic, out):5.1f}")
            continue
        out_echo = canceller.process(call.echo, call.far)
        out_noise = canceller.process(noise, call.far)
        apart = 10 * np.log10(10 ** (_power_db(out_echo) / 10) + 10 ** (_power_db(out_noise) / 10))
        kind = f"{call.meta.get('noise', '?')} ({call.meta.get('snr_db', '?')})"
        print(
            f"{call.fileid:>6} | {kind:18s} | {erle_db(call.mic, out):5.1f} "
            f"| {erle_db(call.echo, out_echo):9.1f} | {erle_db(noise, out_noise):10.1f} "
            f"| {_power_db(call.echo) - _power_db(noise):10.1f} | {_power_db(out) - apart:10.1f}"
        )


if __name__ == "__main__":
    main()
