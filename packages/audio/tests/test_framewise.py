"""The per-frame program equals the module-by-module network, frame by frame."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from convsuite.audio.framewise import FrameProgram
from convsuite.audio.model import D3AEC, D3AECConfig
from convsuite.audio.stft import stft


def _network(config: D3AECConfig) -> D3AEC:
    torch.manual_seed(1)
    net = D3AEC(config).eval()
    for module in net.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(-1.5, 1.5)  # negative scales too
            module.bias.data.normal_(0, 0.1)
    return net


def test_program_equals_network_frame_by_frame() -> None:
    # bottleneck_factor=1: blocks 1 and 2 have bottlenecks, so the head's and the bottlenecks'
    # inputs are non-adjacent feature rows (gathered), and the D2 layers mix three dilations.
    net = _network(
        D3AECConfig(stem_channels=4, growth_rate=3, num_layers=3, num_blocks=3, bottleneck_factor=1)
    )
    torch.manual_seed(2)
    mic, far = torch.randn(2, 70 * 256)  # past 64 frames: the buffers move their history once
    spec_mic, spec_far = stft(mic), stft(far)

    def pseudo(spec: torch.Tensor) -> torch.Tensor:
        return torch.stack([spec.real, spec.imag])[None]

    with torch.no_grad():
        near = net(pseudo(spec_mic), pseudo(spec_far))[0][0]
    expected = torch.complex(near[0], near[1])  # (T, F)
    program = FrameProgram(net)
    padded = [torch.nn.functional.pad(x, (256, 256)).numpy() for x in (mic, far)]
    for run in range(2):  # a reset stream starts from silence again
        frames = [
            program.step(padded[0][m * 256 : m * 256 + 512], padded[1][m * 256 : m * 256 + 512])
            for m in range(expected.shape[0])
        ]
        got = torch.from_numpy(np.stack(frames))
        scale = expected.abs().max()
        assert (got - expected).abs().max() <= 1e-5 * scale, run
        program.reset()


def test_program_refuses_an_offline_network() -> None:
    with pytest.raises(ValueError, match="causal"):
        FrameProgram(D3AEC(D3AECConfig(stem_channels=4, growth_rate=2, causal=False)))


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_program_computes_as_the_original(how: str) -> None:
    net = _network(D3AECConfig(stem_channels=4, growth_rate=3, num_layers=2, num_blocks=2))
    torch.manual_seed(3)
    mic, far = torch.randn(2, 40 * 256).numpy()
    program = FrameProgram(net)
    hops = [(mic[m * 256 : m * 256 + 512], far[m * 256 : m * 256 + 512]) for m in range(38)]
    for pair in hops[:5]:  # a stream under way: its state is copied too
        program.step(*pair)
    copied = copy.deepcopy(program) if how == "deepcopy" else pickle.loads(pickle.dumps(program))
    for pair in hops[5:]:
        np.testing.assert_array_equal(copied.step(*pair), program.step(*pair))
