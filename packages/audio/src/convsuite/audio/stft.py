"""The short-time Fourier transform the network works in: 512-point Hann window, hop 256, 16 kHz.

Frame m covers samples ``[m H - (N - H), m H + H)`` (N = 512, H = 256): its newest sample is the
last of hop m, so a frame is complete as soon as its hop has arrived, and a causal network on these
frames has an algorithmic latency of one window, N / 16 kHz = 32 ms. Synthesis is plain overlap-add
of the inverse FFTs: the periodic Hann window sums to exactly 1 at 50 % overlap, so
``istft(stft(x)) == x`` (to float rounding) and streaming (frame by frame) equals offline.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["N_FFT", "HOP", "frame_count", "istft", "stft"]

N_FFT = 512
HOP = 256


def frame_count(samples: int, hop: int = HOP) -> int:
    """Frames :func:`stft` gives for ``samples`` samples (enough to reconstruct every sample)."""
    return math.ceil(samples / hop) + 1


def stft(x: Tensor, n_fft: int = N_FFT, hop: int = HOP) -> Tensor:
    """(..., samples) real -> (..., frames, n_fft // 2 + 1) complex spectra, Hann analysis window."""
    samples = x.shape[-1]
    frames = frame_count(samples, hop)
    padded = torch.nn.functional.pad(x, (n_fft - hop, frames * hop - samples))
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    return torch.fft.rfft(padded.unfold(-1, n_fft, hop) * window, dim=-1)


def istft(spec: Tensor, samples: int, n_fft: int = N_FFT, hop: int = HOP) -> Tensor:
    """Inverse of :func:`stft`: (..., frames, bins) complex -> (..., samples) real (overlap-add)."""
    frames = torch.fft.irfft(spec, n=n_fft, dim=-1)  # (..., M, N)
    *lead, count, _ = frames.shape
    flat = frames.reshape(-1, count, n_fft).transpose(1, 2)  # (B, N, M) columns for fold
    length = (count - 1) * hop + n_fft
    out = torch.nn.functional.fold(
        flat, output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop)
    )
    out = out.reshape(*lead, length)
    return out[..., n_fft - hop : n_fft - hop + samples]
