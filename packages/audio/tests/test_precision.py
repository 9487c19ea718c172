"""``--precision bf16`` through core-ops' precision API stays close to fp32 on this network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convsuite.audio.data import simulate_call
from convsuite.audio.infer import EchoCanceller
from convsuite.audio.model import D3AEC
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.precision import bf16_layers


def test_bf16_output_stays_close_to_fp32(invoke, tmp_path) -> None:
    call = simulate_call(4, 2.0, scenario="dt", split="test")
    fp32 = EchoCanceller.from_pretrained(precision="fp32").process(call.mic, call.far)
    bf16 = EchoCanceller.from_pretrained(precision="bf16")
    # Every pseudo-complex convolution runs bf16 (core-ops caches its block weight in bf16).
    assert len(bf16_layers(bf16.network)) == 23
    out = bf16.process(call.mic, call.far)
    # bf16 feature maps (8-bit mantissas) through 23 convolutions: 2.7% of the peak here.
    assert 0 < np.abs(out - fp32).max() <= 5e-2 * np.abs(fp32).max()
    # The per-frame program copies the float32 parameters: a stream computes as fp32 offline.
    stream = bf16.stream(delay=0)
    streamed = np.concatenate([stream.process(call.mic, call.far), stream.flush()])
    offline = EchoCanceller.from_pretrained().process(call.mic, call.far, delay=0)
    assert np.abs(streamed - offline).max() <= 1e-5 * np.abs(offline).max()


def test_precision_is_checked(invoke, tmp_path) -> None:
    with pytest.raises(InputError, match="precision"):
        EchoCanceller(D3AEC.from_pretrained(), precision="fp16")
    status, _, err = invoke(
        "enhance", "a.wav", "b.wav", "-o", tmp_path / "o.wav", "--precision", "fp8"
    )
    assert status == 2 and "fp8" in err
    assert torch.get_num_threads() == 1
