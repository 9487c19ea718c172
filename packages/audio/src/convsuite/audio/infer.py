"""The inference pipeline: delay alignment, STFT, the network, inverse STFT; offline and streaming.

``EchoCanceller.from_pretrained().process(mic, far)`` is the offline path (used by ``aec
enhance``); ``EchoCanceller.stream(delay)`` gives a :class:`StreamingAEC` that takes the call hop
by hop (256 samples = 16 ms) and returns the same samples as the offline path, 32 ms later.

Delay: the far-end signal is shifted by a delay found with GCC-PHAT (Knapp & Carter 1976) between
the microphone and far-end signals, searched over 0-600 ms, less a 5 ms margin so that the shifted
far end never leads the echo. Offline, the whole recording is used for the estimate; a stream
takes the delay as an argument (from a previous call on the same device, or 0: the causal network
still sees 1.5 s of far-end past for the paper preset, 1 s for the small preset).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch

from convsuite.audio.data.wav import SAMPLE_RATE, check_pair
from convsuite.audio.framewise import FrameProgram
from convsuite.audio.model import D3AEC
from convsuite.audio.stft import HOP, N_FFT, istft, stft
from convsuite.core_ops.precision import check_precision, inference_mode, prepare_for_inference

__all__ = ["EchoCanceller", "StreamingAEC", "align_far", "estimate_delay"]

_CHUNK_FRAMES = 256  # frames per network call offline (bounded memory for long calls)


def estimate_delay(
    mic: np.ndarray, far: np.ndarray, max_delay_s: float = 0.6, margin_s: float = 0.005
) -> int:
    """Far-end to microphone delay in samples by GCC-PHAT, less ``margin_s``, at least 0.

    Args:
        mic, far: (samples,) at 16 kHz.
        max_delay_s: longest delay searched.
        margin_s: subtracted from the peak lag so the aligned far end does not lead the echo.
    """
    n = mic.size + far.size
    size = 1 << (n - 1).bit_length()
    cross = np.fft.rfft(mic, size) * np.conj(np.fft.rfft(far, size))
    correlation = np.fft.irfft(cross / (np.abs(cross) + 1e-12), size)
    lags = min(int(max_delay_s * SAMPLE_RATE), mic.size - 1)
    peak = int(np.argmax(correlation[: lags + 1]))
    return max(peak - int(margin_s * SAMPLE_RATE), 0)


def align_far(far: np.ndarray, delay: int) -> np.ndarray:
    """``far`` delayed by ``delay`` samples (zeros first), same length."""
    if delay <= 0:
        return far
    return np.concatenate([np.zeros(delay, dtype=far.dtype), far[: far.size - delay]])


def _pseudo(spec: torch.Tensor) -> torch.Tensor:
    """(T, F) complex -> (1, 2, T, F) real (real, imaginary)."""
    return torch.stack([spec.real, spec.imag]).unsqueeze(0)


class EchoCanceller:
    """Removes echo and noise from a microphone signal given the far-end reference.

    Args:
        network: a :class:`D3AEC` (eval mode is set here).
        device: torch device.
        precision: ``"fp32"`` or ``"bf16"``, through core-ops' precision API
            (:func:`~convsuite.core_ops.precision.prepare_for_inference`): the pseudo-complex
            convolutions run on a cached bf16 channels-last block weight (offline processing
            only; the streaming frame program stays float32).
    """

    def __init__(self, network: D3AEC, device: str = "cpu", precision: str = "fp32") -> None:
        check_precision(precision, "--precision")
        self.network = prepare_for_inference(network.to(device), precision)
        self.device = device
        self.precision = precision

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        device: str = "cpu",
        precision: str = "fp32",
    ) -> EchoCanceller:
        """Bundled weights (default ``d3aec_small``) or a checkpoint from ``aec train``."""
        return cls(D3AEC.from_pretrained(name_or_path, device), device, precision)

    def process(self, mic: np.ndarray, far: np.ndarray, delay: int | None = None) -> np.ndarray:
        """Near-end speech estimate (samples,) float32 from ``mic`` and ``far`` (16 kHz).

        Args:
            mic: microphone signal (samples,).
            far: far-end reference, cut or zero-padded to the microphone's length.
            delay: far-end to microphone delay in samples; None estimates it (GCC-PHAT).

        Raises:
            InputError: see :func:`convsuite.audio.data.wav.check_pair`.
        """
        mic, far = check_pair(mic, far)
        delay = estimate_delay(mic, far) if delay is None else int(delay)
        with inference_mode(self.precision):
            return self._process(mic, align_far(far, delay))

    def _process(self, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
        mic_spec = stft(torch.from_numpy(mic).to(self.device))
        far_spec = stft(torch.from_numpy(far).to(self.device))
        net, frames = self.network, mic_spec.shape[0]
        if net.config.causal and frames > _CHUNK_FRAMES:
            # Chunks with the network's receptive field of past frames in front of each (equal to
            # one call on the whole spectrum, in bounded memory).
            context, parts = net.receptive_frames, []
            for i in range(0, frames, _CHUNK_FRAMES):
                lo, hi = max(i - context, 0), min(i + _CHUNK_FRAMES, frames)
                out = net(_pseudo(mic_spec[lo:hi]), _pseudo(far_spec[lo:hi]))[0]
                parts.append(out[:, :, i - lo :])
            near = torch.cat(parts, dim=2)
        else:
            near = net(_pseudo(mic_spec), _pseudo(far_spec))[0]
        spec = torch.complex(near[0, 0], near[0, 1])
        return istft(spec, mic.size).cpu().numpy().astype(np.float32)

    def stream(self, delay: int = 0) -> StreamingAEC:
        """A :class:`StreamingAEC` on this network (a per-frame program of its current weights;
        float32 on the CPU whatever this canceller's precision and device: a warning says so when
        they are not float32 and the CPU)."""
        if self.precision != "fp32" or torch.device(self.device).type != "cpu":
            warnings.warn(
                f"streaming runs float32 on the CPU (precision {self.precision} and device "
                f"{self.device} apply to offline processing only)",
                stacklevel=2,
            )
        return StreamingAEC(self.network, delay)


class StreamingAEC:
    """Frame-by-frame echo cancellation: feed hops of audio, get enhanced audio back.

    Call :meth:`process` with any number of microphone and far-end samples (equal counts); it
    returns every output sample complete so far. :meth:`flush` ends the stream and returns the
    rest. The concatenated outputs equal fp32 offline processing (:meth:`EchoCanceller.process`
    of an fp32 canceller) with the same ``delay``.
    Each output sample leaves 512 samples (32 ms) after it entered: one hop of buffering plus the
    half window of overlap-add.

    Args:
        network: a causal :class:`D3AEC`, compiled into a
            :class:`~convsuite.audio.framewise.FrameProgram` (its weights are copied now; several
            streams may run on one network).
        delay: far-end to microphone delay in samples (the far end is delayed by it).

    The per-frame program runs in float32 on the CPU whatever the network's precision and device
    (it copies the float32 parameters).
    """

    def __init__(self, network: D3AEC, delay: int = 0) -> None:
        self.program = FrameProgram(network.eval())
        self._mic = np.zeros(N_FFT - HOP, dtype=np.float32)  # unframed samples, history first
        self._far = np.zeros(N_FFT - HOP + max(int(delay), 0), dtype=np.float32)
        self._tail = np.zeros(N_FFT - HOP, dtype=np.float32)
        self._received = 0
        self._emitted = -HOP  # the first hop out is the pre-roll before the stream started

    def _frame(self, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
        # numpy's inverse FFT of one frame: cheaper per call than torch's (float64 before numpy 2)
        frame = np.fft.irfft(self.program.step(mic, far), N_FFT).astype(np.float32, copy=False)
        hop = self._tail + frame[:HOP]
        self._tail = frame[HOP:]
        return hop

    def process(self, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
        """Feed (samples,) microphone and far-end audio; return the completed output samples."""
        mic = np.asarray(mic, dtype=np.float32).ravel()
        far = np.asarray(far, dtype=np.float32).ravel()
        if mic.size != far.size:
            raise ValueError(f"mic and far chunks differ in length ({mic.size} vs {far.size})")
        self._received += mic.size
        self._mic = np.concatenate([self._mic, mic])
        self._far = np.concatenate([self._far, far])
        out = []
        while self._mic.size >= N_FFT:
            out.append(self._frame(self._mic[:N_FFT], self._far[:N_FFT]))
            self._mic, self._far = self._mic[HOP:], self._far[HOP:]
        return self._emit(np.concatenate(out) if out else np.zeros(0, dtype=np.float32))

    def _emit(self, samples: np.ndarray) -> np.ndarray:
        skip = max(-self._emitted, 0)
        self._emitted += samples.size
        return samples[skip:].astype(np.float32)

    def flush(self) -> np.ndarray:
        """End of stream: the remaining output samples (zeros are fed to complete the frames)."""
        missing = self._received - max(self._emitted, 0)
        # Far-end samples still in the delay line belong after the call's end: offline drops them.
        self._far = self._far[: self._mic.size]
        pad = (-(self._mic.size - (N_FFT - HOP))) % HOP + HOP
        out = self.process(np.zeros(pad, dtype=np.float32), np.zeros(pad, dtype=np.float32))
        return out[:missing]
