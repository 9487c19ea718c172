"""The ``aec`` command line: enhance (offline and streaming), simulate, evaluate, and refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from convsuite.audio.data import simulate_call, write_wav


@pytest.fixture(scope="module")
def call_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("call")
    call = simulate_call(21, 2.0, scenario="dt", split="test")
    return write_wav(folder / "mic.wav", call.mic), write_wav(folder / "far.wav", call.far)


def test_enhance_offline_and_streaming_agree(invoke, call_files, tmp_path) -> None:
    mic, far = call_files
    status, _, err = invoke("enhance", mic, far, "-o", tmp_path / "near.wav")
    assert status == 0 and "far-end delay" in err
    status, _, _ = invoke("enhance", mic, far, "-o", tmp_path / "stream.wav", "--stream")
    assert status == 0
    offline, rate = sf.read(tmp_path / "near.wav")
    streamed, _ = sf.read(tmp_path / "stream.wav")
    assert rate == 16000 and offline.shape == streamed.shape == sf.read(mic)[0].shape
    assert np.abs(offline - streamed).max() <= 2 / 32767  # 16-bit rounding apart
    assert np.abs(offline).max() > 0


def _write(path: Path, kind: str, rate: int = 16000) -> Path:
    rng = np.random.default_rng(0)
    data = {
        "stereo": 0.1 * rng.standard_normal((16000, 2)),
        "empty": np.zeros(0),
        "zeros": np.zeros(16000),
        "short": 0.1 * rng.standard_normal(4000),
        "long": 0.1 * rng.standard_normal(60000),
    }[kind]
    sf.write(path, data, rate)
    return path


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "no such audio file"),
        ("stereo", "2 channels"),
        ("empty", "empty"),
        ("zeros", "all zeros"),
        ("long", "differs from the microphone's"),
        ("same", "is also an input"),
    ],
)
def test_enhance_refuses_bad_input(invoke, call_files, tmp_path, case: str, message: str) -> None:
    mic, far = call_files
    out = tmp_path / "near.wav"
    if case == "missing":
        far = tmp_path / "nothing.wav"
    elif case == "same":
        out = mic
    else:
        far = _write(tmp_path / f"{case}.wav", case)
    before = out.stat().st_mtime_ns if out.exists() else None
    status, _, err = invoke("enhance", mic, far, "-o", out)
    assert status == 2
    assert err.startswith("error:") and message in err and err.count("\n") == 1
    assert (out.stat().st_mtime_ns if out.exists() else None) == before  # nothing written
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("near")] == []


def test_enhance_resamples_with_a_warning(invoke, call_files, tmp_path) -> None:
    mic, _ = call_files
    call = simulate_call(21, 2.0, scenario="dt", split="test")
    from scipy.signal import resample_poly

    sf.write(tmp_path / "far48k.wav", resample_poly(call.far, 3, 1), 48000)
    with pytest.warns(UserWarning, match="resampling from 48000 Hz"):
        status, _, _ = invoke("enhance", mic, tmp_path / "far48k.wav", "-o", tmp_path / "n.wav")
    assert status == 0 and sf.info(tmp_path / "n.wav").samplerate == 16000


def test_help_has_examples(invoke) -> None:
    for command in ("enhance", "simulate", "train", "evaluate"):
        status, out, _ = invoke(command, "--help")
        assert status == 0 and "Example: aec" in out


@pytest.mark.slow
def test_simulate_then_evaluate(invoke, tmp_path) -> None:
    status, _, err = invoke(
        "simulate", "--seed", "3", "--count", "3", "--seconds", "2", "--out", tmp_path / "calls"
    )
    assert status == 0 and "1 fst, 1 nst, 1 dt" in err
    status, out, _ = invoke(
        "evaluate", tmp_path / "calls", "--out", tmp_path / "report", "--figures", "1"
    )
    assert status == 0
    assert (
        "| fst | D3AEC (ours) |" in out and "| dt | SpeexDSP |" in out and "| nst | NLMS |" in out
    )
    assert "AEC3" in out  # its row, or the note saying it is not installed
    assert "24,964 parameters, algorithmic latency 32 ms" in out
    report = tmp_path / "report"
    assert sorted(p.name for p in report.iterdir()) == [
        "call0_fst_spectrograms.png",
        "evaluation.json",
        "evaluation.md",
    ]
    import json

    record = json.loads((report / "evaluation.json").read_text())
    fst = record["summary"]["fst"]
    assert fst["unprocessed mic"]["erle_db"] == pytest.approx(0.0)
    assert 1.0 <= fst["D3AEC (ours)"]["aecmos_echo"] <= 5.0
    # the exact echo removal row: the mic itself where there is no echo, better where there is
    exact = "echo removed exactly (mic - echo)"
    nst, dt = record["summary"]["nst"], record["summary"]["dt"]
    assert nst[exact]["pesq_wb"] == nst["unprocessed mic"]["pesq_wb"]
    assert dt[exact]["pesq_wb"] > dt["unprocessed mic"]["pesq_wb"]
    assert fst[exact]["erle_db"] > fst["unprocessed mic"]["erle_db"] + 3.0  # noise-limited
    assert "a perfect echo canceller" in out


def test_train_writes_weights_that_enhance_loads(invoke, call_files, tmp_path) -> None:
    weights = tmp_path / "run" / "tiny.safetensors"
    args = ["--preset", "tiny", "--calls", "2", "--epochs", "1", "--seconds", "1"]
    status, _, err = invoke(
        "train", "--out", tmp_path / "run", "--weights", weights, *args, "--batch-size", "2"
    )
    assert status == 0 and weights.is_file() and weights.with_suffix(".json").is_file()
    import json

    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["architecture"] == "D3AEC" and card["config"]["num_blocks"] == 1  # tiny
    assert "val_loss" in card["metrics"] and card["metrics"]["steps"] == 1  # 2 calls, batch 2
    mic, far = call_files
    status, _, _ = invoke("enhance", mic, far, "-o", tmp_path / "n.wav", "--weights", weights)
    assert status == 0 and (tmp_path / "n.wav").is_file()
    status, _, err = invoke("train", "--out", tmp_path / "r2", "--weights", tmp_path / "w.pt")
    assert status == 2 and "safetensors" in err
    for init, message in ((tmp_path / "none.safetensors", "no such"), (weights, "architecture")):
        status, _, err = invoke(
            "train", "--out", tmp_path / "r3", "--weights", tmp_path / "w.safetensors",
            "--init", init, "--preset", "small", "--calls", "2", "--epochs", "1",
        )  # fmt: skip
        assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_stream_warns_that_it_runs_float32_on_the_cpu(invoke, call_files, tmp_path) -> None:
    mic, far = call_files
    with pytest.warns(UserWarning, match="streaming runs float32 on the CPU") as caught:
        status, _, _ = invoke(
            "enhance", mic, far, "-o", tmp_path / "s.wav", "--stream", "--precision", "bf16"
        )
    assert status == 0 and len(caught) == 1


def test_train_passes_the_loss_weights_through(invoke, tmp_path, monkeypatch) -> None:
    import convsuite.audio.train

    seen = {}

    def fake_train(out, weights, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen.update(kwargs)
        return weights

    monkeypatch.setattr(convsuite.audio.train, "train_network", fake_train)
    weights = tmp_path / "w.safetensors"
    status, _, _ = invoke(
        "train", "--out", tmp_path, "--weights", weights,
        "--distortion-weight", "0.3", "--residual-weight", "0.02",
    )  # fmt: skip
    assert status == 0
    assert seen["distortion_weight"] == 0.3 and seen["residual_weight"] == 0.02
    invoke("train", "--out", tmp_path, "--weights", weights)
    assert seen["distortion_weight"] == 0.0  # off unless asked for
    # the CLI's literal defaults (it imports train lazily) are train's constants
    assert seen["residual_weight"] == convsuite.audio.train.RESIDUAL_WEIGHT
    assert seen["residual_floor_db"] == convsuite.audio.train.RESIDUAL_FLOOR_DB
