"""The Microsoft AEC-Challenge synthetic layout: reading it, and writing simulated calls in it.

A folder holds ``farend_speech/farend_speech_fileid_<i>.wav`` (the loopback reference),
``echo_signal/echo_fileid_<i>.wav``, ``nearend_speech/nearend_speech_fileid_<i>.wav`` (the target),
``nearend_mic_signal/nearend_mic_fileid_<i>.wav`` and ``meta.csv`` (one row per ``fileid``;
Cutler et al., "INTERSPEECH 2021 Acoustic Echo Cancellation Challenge"). The challenge's own
columns (``ser``, ``is_nearend_noisy``, ``is_farend_nonlinear``, ...) are kept when present; the
simulator adds ``scenario`` (fst/nst/dt) and its draws. Without a ``scenario`` column the scenario
is inferred: silent near-end speech -> fst, silent echo -> nst, else dt.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsuite.audio.data.simulate import SCENARIOS, simulate_call
from convsuite.audio.data.wav import SAMPLE_RATE, check_pair, read_wav, resample, write_wav
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_write

__all__ = ["ChallengeCall", "read_challenge_set", "write_challenge_set"]

_FOLDERS = {
    "far": ("farend_speech", "farend_speech_fileid_{}.wav"),
    "echo": ("echo_signal", "echo_fileid_{}.wav"),
    "near": ("nearend_speech", "nearend_speech_fileid_{}.wav"),
    "mic": ("nearend_mic_signal", "nearend_mic_fileid_{}.wav"),
}


@dataclass
class ChallengeCall:
    """One call of an AEC-Challenge folder: 16 kHz float32 (samples,) arrays, equal lengths.

    ``near`` and ``echo`` are None where the folder lacks them (a real recording).
    """

    fileid: str
    mic: np.ndarray
    far: np.ndarray
    near: np.ndarray | None
    echo: np.ndarray | None
    scenario: str
    meta: dict


def _path(root: Path, kind: str, fileid: str) -> Path:
    folder, pattern = _FOLDERS[kind]
    return root / folder / pattern.format(fileid)


def _read_reference(path: Path, length: int) -> np.ndarray | None:
    """A reference signal that may be silent (near-end speech in fst, echo in nst)."""
    if not path.is_file():
        return None
    import soundfile as sf

    try:
        signal, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception as error:
        raise InputError(path, f"is not a readable audio file ({error})") from None
    if signal.ndim != 1:
        raise InputError(path, f"has {signal.shape[1]} channels; expected mono")
    signal = resample(signal, rate, SAMPLE_RATE)
    return np.pad(signal, (0, max(length - signal.size, 0)))[:length]


def read_challenge_set(root: str | os.PathLike[str]) -> list[ChallengeCall]:
    """Every call of an AEC-Challenge synthetic folder, in ``meta.csv`` order.

    Raises:
        InputError: no ``meta.csv`` or no ``fileid`` column, a missing microphone or far-end
            file, or any file the WAV checks refuse (see :func:`read_wav`).
    """
    root = Path(root)
    table = root / "meta.csv"
    if not table.is_file():
        raise InputError(root, "is not an AEC-Challenge folder (no meta.csv)")
    with open(table, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "fileid" not in rows[0]:
        raise InputError(table, "has no fileid column (or no rows)")
    calls = []
    for row in rows:
        fileid = row["fileid"].strip()
        mic_path, far_path = _path(root, "mic", fileid), _path(root, "far", fileid)
        mic, far = check_pair(read_wav(mic_path), read_wav(far_path), mic_path, far_path)
        near = _read_reference(_path(root, "near", fileid), mic.size)
        echo = _read_reference(_path(root, "echo", fileid), mic.size)
        scenario = (row.get("scenario") or "").strip()
        if scenario not in SCENARIOS:
            if near is not None and not np.any(near):
                scenario = "fst"
            elif echo is not None and not np.any(echo):
                scenario = "nst"
            else:
                scenario = "dt"
        calls.append(ChallengeCall(fileid, mic, far, near, echo, scenario, dict(row)))
    return calls


def write_challenge_set(
    root: str | os.PathLike[str],
    seed: int = 0,
    count: int = 6,
    seconds: float = 6.0,
    split: str = "test",
) -> str:
    """Simulate ``count`` calls (scenarios fst, nst, dt in turn) into an AEC-Challenge folder.

    Call i uses seed ``seed + i``. Returns a one-line summary (calls per scenario).
    """
    root = Path(root)
    columns = [
        "fileid",
        "scenario",
        "ser",
        "is_nearend_noisy",
        "is_farend_nonlinear",
        "snr_db",
        "delay_ms",
        "rt60_s",
        "rir",
        "time_varying",
        "noise",
        "split",
        "seed",
    ]
    rows = []
    for i in range(count):
        scenario = SCENARIOS[i % len(SCENARIOS)]
        call = simulate_call(seed + i, seconds, scenario=scenario, split=split)  # type: ignore[arg-type]
        fileid = str(i)
        for kind, signal in (
            ("far", call.far),
            ("echo", call.echo),
            ("near", call.near),
            ("mic", call.mic),
        ):
            write_wav(_path(root, kind, fileid), signal)
        meta = call.meta
        rows.append(
            {
                "fileid": fileid,
                "scenario": scenario,
                "ser": "" if meta["ser_db"] is None else f"{meta['ser_db']:.2f}",
                "is_nearend_noisy": int(meta["noise"] != "none"),
                "is_farend_nonlinear": int(meta["nonlinearity"] != "linear"),
                "snr_db": "" if meta["snr_db"] is None else f"{meta['snr_db']:.2f}",
                "delay_ms": f"{meta['delay_ms']:.1f}",
                "rt60_s": f"{meta['rt60_s']:.3f}",
                "rir": meta["rir"],
                "time_varying": int(meta["time_varying"]),
                "noise": meta["noise"],
                "split": split,
                "seed": seed + i,
            }
        )
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_write(root / "meta.csv") as handle:
        handle.write(text.getvalue())
    counts = {s: sum(r["scenario"] == s for r in rows) for s in SCENARIOS}
    return ", ".join(f"{n} {s}" for s, n in counts.items())
