"""Inference-side post-filters on the network's masks (no retraining): what they do to the targets.

Issue 16's quality targets are PESQ-WB in double talk above every baseline and AECMOS echo >= 4.5.
This asks whether a choice made after the network, on its two masks, moves them without losing
the ERLE target (>= 35 dB). Per call of an AEC-Challenge folder (``aec simulate`` output) the
far end is aligned as in :meth:`EchoCanceller.process`, the bounded masks ``M_e, M_n`` are
computed once on the whole call (offline, causal network), and each variant below makes an output
from them and the microphone spectrum Y; every output is scored as ``aec evaluate`` scores ours
(ERLE after 1 s in far-end single talk; PESQ-WB and STOI against the near end; AECMOS echo and
degradation):

- ``base``: ``M_n M_e Y``, the pipeline's output (asserted per call to equal
  :meth:`EchoCanceller.process` to 1e-6, so the hand-made steps are the library's);
- ``echo_only``: ``M_e Y`` (the noise mask left out);
- ``nfloor{f}``: the noise mask's modulus floored at f (a noise-suppression limit);
- ``gamma{g}``: the product mask's modulus raised to g (phase kept; g > 1 deepens every
  attenuation, g < 1 softens it);
- ``expand{t}``: a downward expander on the product mask: a modulus a < t becomes a^2 / t;
- ``nlp{thr}_{g}``: a frame gate after the masks (the non-linear processor of classical
  cancellers): frames whose output energy is more than -thr dB below the microphone's are
  multiplied by g (g = 0: a mute; no comfort noise).

All are causal and per frame, so any of them could run in the stream as well.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python packages/audio/benchmarks/diagnose_postfilters.py
FOLDER [--weights W]`` (about 75 s for 12 calls of 6 s on one loaded thread).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from convsuite.audio.data.challenge import read_challenge_set
from convsuite.audio.evaluate import score_call
from convsuite.audio.infer import EchoCanceller, _pseudo, align_far, estimate_delay
from convsuite.audio.stft import istft, stft


def _complex(x: Tensor) -> Tensor:
    """(1, 2, T, F) real -> (T, F) complex."""
    return torch.complex(x[0, 0], x[0, 1])


def _with_modulus(mask: Tensor, modulus: Tensor) -> Tensor:
    """``mask`` with its modulus replaced by ``modulus`` (phase kept)."""
    return mask * modulus / mask.abs().clamp_min(1e-8)


def _gate(threshold_db: float, gain: float) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    def apply(echo: Tensor, noise: Tensor, mic: Tensor) -> Tensor:
        out = echo * noise * mic
        ratio = (out.abs() ** 2).sum(1) / ((mic.abs() ** 2).sum(1) + 1e-10)
        quiet = 10 * torch.log10(ratio + 1e-12) < threshold_db
        return out * torch.where(quiet, gain, 1.0)[:, None]

    return apply


def _variants() -> dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]]:
    """name -> f(echo mask, noise mask, mic), all (T, F) complex -> output spectrum (T, F)."""
    variants: dict[str, Callable[[Tensor, Tensor, Tensor], Tensor]] = {
        "base": lambda e, n, y: e * n * y,
        "echo_only": lambda e, n, y: e * y,
    }
    for f in (0.2, 0.4):
        variants[f"nfloor{f}"] = lambda e, n, y, f=f: e * _with_modulus(n, n.abs().clamp_min(f)) * y
    for g in (0.8, 1.5, 2.0):
        variants[f"gamma{g}"] = lambda e, n, y, g=g: _with_modulus(e * n, (e * n).abs() ** g) * y
    for t in (0.1, 0.3):

        def expand(e: Tensor, n: Tensor, y: Tensor, t: float = t) -> Tensor:
            a = (e * n).abs()
            return _with_modulus(e * n, torch.where(a < t, a * a / t, a)) * y

        variants[f"expand{t}"] = expand
    for threshold, gain in ((-20, 0.1), (-15, 0.1), (-20, 0.0)):
        variants[f"nlp{threshold}_{gain}"] = _gate(threshold, gain)
    return variants


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", help="AEC-Challenge folder from `aec simulate`")
    parser.add_argument("--weights", default=None, help="weights (default: bundled)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    canceller = EchoCanceller.from_pretrained(args.weights)
    network = canceller.network
    variants = _variants()
    rows: dict[str, list[tuple[str, dict[str, float]]]] = {name: [] for name in variants}
    for call in read_challenge_set(args.folder):
        far = align_far(call.far, estimate_delay(call.mic, call.far))
        mic = stft(torch.from_numpy(call.mic))
        with torch.no_grad():
            echo, noise = network.mask_pair(_pseudo(mic), _pseudo(stft(torch.from_numpy(far))))
        echo, noise = _complex(echo), _complex(noise)
        for name, variant in variants.items():
            output = istft(variant(echo, noise, mic), call.mic.size).numpy()
            if name == "base":  # the steps above redone by hand must be the library's pipeline
                library = canceller.process(call.mic, call.far)
                gap = float(np.abs(output - library).max())
                assert gap <= 1e-6, (
                    f"call {call.fileid}: base differs from EchoCanceller.process by {gap}"
                )
            rows[name].append((call.scenario, score_call(call, output.astype(np.float32), True)))

    def mean(rs: list, scenario: str, key: str, reduce: Callable = np.mean) -> float:
        values = [s[key] for sc, s in rs if sc == scenario and math.isfinite(s.get(key, math.nan))]
        return float(reduce(values)) if values else math.nan

    print(f"{args.folder}, weights {args.weights or 'bundled'}: means per scenario")
    print(
        "variant        | fst ERLE (min) | fst echo | dt PESQ | dt STOI | dt SI-SDR | dt echo "
        "| dt deg | nst PESQ | nst deg"
    )
    for name, rs in rows.items():
        erle, lowest = mean(rs, "fst", "erle_db"), mean(rs, "fst", "erle_db", np.min)
        print(
            f"{name:14s} | {erle:6.2f} ({lowest:5.2f}) | {mean(rs, 'fst', 'aecmos_echo'):.2f} "
            f"| {mean(rs, 'dt', 'pesq_wb'):.3f} | {mean(rs, 'dt', 'stoi'):.3f} "
            f"| {mean(rs, 'dt', 'si_sdr_db'):6.2f} | {mean(rs, 'dt', 'aecmos_echo'):.2f} "
            f"| {mean(rs, 'dt', 'aecmos_deg'):.2f} | {mean(rs, 'nst', 'pesq_wb'):.3f} "
            f"| {mean(rs, 'nst', 'aecmos_deg'):.2f}"
        )


if __name__ == "__main__":
    main()
