"""The demo writes its spectrograms, audio files and players page, and reports the key figures."""

from __future__ import annotations

import math

import pytest

from convsuite.audio.baselines import available_baselines
from convsuite.audio.demo import run
from convsuite.audio.evaluate import EXACT_ECHO_REMOVAL


@pytest.mark.slow
def test_demo(tmp_path) -> None:
    result = run(tmp_path)
    assert [f.name for f in result.figures] == [
        "audio_fst_spectrograms.png",
        "audio_dt_spectrograms.png",
        "audio_nst_spectrograms.png",
    ]
    assert all(f.stat().st_size > 10_000 for f in result.figures)
    page = (tmp_path / "players.html").read_text()
    methods = ["D3AEC (ours)", *available_baselines()]  # AEC3 where its extra is installed
    assert page.count("<audio") == 3 * (2 + len(methods)) + 2  # mic, far, methods; 2 targets
    assert (tmp_path / "dt_d3aec__ours.wav").is_file()
    fst = result.summary["fst"]
    assert set(fst) == {*methods, "unprocessed mic", EXACT_ECHO_REMOVAL}
    assert {"NLMS", "SpeexDSP"} <= set(methods)
    assert fst["D3AEC (ours)"]["erle_db"] > 6.0
    assert math.isfinite(result.summary["dt"]["D3AEC (ours)"]["pesq_wb"])
