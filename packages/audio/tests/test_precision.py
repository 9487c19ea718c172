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
    # The API converts nn.Conv*/nn.Linear; D3AEC's convolutions are pseudo-complex (neither), so
    # nothing is converted today and the outputs agree to float32 rounding.
    assert bf16_layers(bf16.network) == []
    out = bf16.process(call.mic, call.far)
    assert np.abs(out - fp32).max() <= 1e-2 * np.abs(fp32).max()
    stream = bf16.stream(delay=0)
    streamed = np.concatenate([stream.process(call.mic, call.far), stream.flush()])
    offline = bf16.process(call.mic, call.far, delay=0)
    assert np.abs(streamed - offline).max() <= 1e-5 * np.abs(offline).max()


def test_precision_is_checked(invoke, tmp_path) -> None:
    with pytest.raises(InputError, match="precision"):
        EchoCanceller(D3AEC.from_pretrained(), precision="fp16")
    status, _, err = invoke(
        "enhance", "a.wav", "b.wav", "-o", tmp_path / "o.wav", "--precision", "fp8"
    )
    assert status == 2 and "fp8" in err
    assert torch.get_num_threads() == 1
