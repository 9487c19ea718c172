"""The STFT reconstructs exactly; streaming (any chunk size) equals offline processing."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from convsuite.audio import infer
from convsuite.audio.data.simulate import simulate_call
from convsuite.audio.infer import EchoCanceller
from convsuite.audio.model import D3AEC, D3AECConfig
from convsuite.audio.stft import HOP, N_FFT, frame_count, istft, stft


@pytest.mark.parametrize("samples", [1, 255, 256, 1000, 16001])
def test_stft_reconstructs_exactly(samples: int) -> None:
    x = torch.randn(2, samples, dtype=torch.float64)
    spec = stft(x)
    assert spec.shape == (2, frame_count(samples), N_FFT // 2 + 1)
    torch.testing.assert_close(istft(spec, samples), x)


def test_stft_frames_are_causal() -> None:
    """Frame m sees samples up to the end of hop m and no later one."""
    x = torch.zeros(4096, dtype=torch.float64)
    x[1000] = 1.0
    spec = stft(x)
    touched = torch.nonzero(spec.abs().sum(-1) > 0).flatten().tolist()
    assert touched == [1000 // HOP, 1000 // HOP + 1]


@pytest.fixture(scope="module")
def canceller() -> EchoCanceller:
    torch.manual_seed(0)
    net = D3AEC(D3AECConfig(stem_channels=4, growth_rate=4, num_layers=3, num_blocks=2))
    for module in net.modules():  # non-trivial BN statistics, so eval differs from identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
    return EchoCanceller(net)


@pytest.mark.parametrize("chunk", [256, 100, 1234])
def test_streaming_equals_offline(canceller: EchoCanceller, chunk: int) -> None:
    call = simulate_call(3, seconds=1.5, scenario="dt")
    offline = canceller.process(call.mic, call.far, delay=300)
    stream = canceller.stream(delay=300)
    parts = [
        stream.process(call.mic[i : i + chunk], call.far[i : i + chunk])
        for i in range(0, call.mic.size, chunk)
    ]
    streamed = np.concatenate([*parts, stream.flush()])
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=1e-6 * np.abs(offline).max())


def test_stream_latency_is_one_window(canceller: EchoCanceller) -> None:
    """Output for an input sample is complete 512 samples (32 ms) after the sample arrived."""
    stream = canceller.stream()
    produced = sum(
        stream.process(np.ones(HOP, np.float32), np.ones(HOP, np.float32)).size for _ in range(10)
    )
    assert 10 * HOP - produced == N_FFT - HOP  # what is still held back, besides the next hop


def test_offline_call_during_a_stream_leaves_it_intact(canceller: EchoCanceller) -> None:
    call = simulate_call(4, 5.0, scenario="dt")  # longer than one offline chunk (256 frames)
    expected = canceller.process(call.mic, call.far, delay=0)
    stream = canceller.stream(delay=0)
    first = stream.process(call.mic[:40000], call.far[:40000])
    canceller.process(call.mic, call.far)  # another call processed offline meanwhile
    rest = stream.process(call.mic[40000:], call.far[40000:])
    streamed = np.concatenate([first, rest, stream.flush()])
    np.testing.assert_allclose(streamed, expected, atol=1e-6 * np.abs(expected).max())


def test_offline_chunks_equal_one_network_call(canceller: EchoCanceller, monkeypatch) -> None:
    """Long calls run in chunks with the receptive field of past frames: same output."""
    call = simulate_call(5, 5.0, scenario="dt")  # 313 frames: two chunks of 256
    chunked = canceller.process(call.mic, call.far, delay=0)
    monkeypatch.setattr(infer, "_CHUNK_FRAMES", 10_000)
    whole = canceller.process(call.mic, call.far, delay=0)
    np.testing.assert_allclose(chunked, whole, atol=1e-6 * np.abs(whole).max())
    monkeypatch.setattr(infer, "_CHUNK_FRAMES", 16)  # 30 frames of context: over two chunks
    np.testing.assert_allclose(
        canceller.process(call.mic, call.far, delay=0), whole, atol=1e-6 * np.abs(whole).max()
    )


def test_stream_of_a_bf16_canceller_warns_it_runs_float32() -> None:
    """A notebook user streaming a bf16 canceller is told the stream runs float32 (an fp32
    canceller on the CPU is not)."""
    config = D3AECConfig(stem_channels=4, growth_rate=4, num_layers=3, num_blocks=2)
    with pytest.warns(UserWarning, match="streaming runs float32 on the CPU"):
        EchoCanceller(D3AEC(config), precision="bf16").stream()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EchoCanceller(D3AEC(config)).stream()
