"""Figures as matplotlib ``Figure`` objects (the CLI and demo save them; nothing here draws on
screen or switches backends)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure

from convsuite.audio.data.wav import SAMPLE_RATE
from convsuite.core_ops.figures import new_figure

__all__ = ["spectrogram_db", "spectrograms_figure"]


def spectrogram_db(signal: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Power spectrogram in dB full scale, (n_fft // 2 + 1, frames), Hann window."""
    from scipy.signal import stft

    _, _, spec = stft(signal, fs=SAMPLE_RATE, window="hann", nperseg=n_fft, noverlap=n_fft - hop)
    return 10 * np.log10(np.abs(spec) ** 2 + 1e-12)


def spectrograms_figure(signals: Mapping[str, np.ndarray], title: str = "") -> Figure:
    """One spectrogram panel per signal (e.g. microphone, far end, ours, a baseline, the target).

    Args:
        signals: name -> (samples,) at 16 kHz, drawn top to bottom on a shared dB colour scale.
        title: the figure's title.
    """
    names = list(signals)
    figure = new_figure(figsize=(9, 1.9 * len(names) + 0.6))
    axes = figure.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    images = {name: spectrogram_db(np.asarray(signals[name], dtype=np.float64)) for name in names}
    top = max(float(np.max(image)) for image in images.values())
    for axis, name in zip(axes, names, strict=True):
        image = images[name]
        seconds = image.shape[1] * 128 / SAMPLE_RATE
        mesh = axis.imshow(
            image,
            origin="lower",
            aspect="auto",
            extent=(0, seconds, 0, SAMPLE_RATE / 2000),
            vmin=top - 80,
            vmax=top,
            cmap="magma",
        )
        axis.set_ylabel("kHz")
        axis.set_title(name, fontsize=9, loc="left")
    axes[-1].set_xlabel("time (s)")
    figure.colorbar(mesh, ax=list(axes), label="dB", shrink=0.8)
    if title:
        figure.suptitle(title)
    return figure
