"""The demo writes its spectrograms, audio files and players page, and reports the key figures."""

from __future__ import annotations

import math

import pytest

from convsuite.audio.demo import run


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
    assert page.count("<audio") == 5 + 6 + 6  # mic, far, 3 methods (+ the target)
    assert (tmp_path / "dt_d3aec__ours.wav").is_file()
    fst = result.summary["fst"]
    assert set(fst) == {"D3AEC (ours)", "NLMS", "SpeexDSP", "unprocessed mic"}
    assert fst["D3AEC (ours)"]["erle_db"] > 6.0
    assert math.isfinite(result.summary["dt"]["D3AEC (ours)"]["pesq_wb"])
