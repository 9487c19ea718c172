"""A causal :class:`D3AEC` compiled into a per-frame program: im2col copies and one matmul per conv.

:class:`StreamingAEC` runs the network one 16-ms frame at a time; this is the package's one
streaming path. Called module by module on each frame (with the past frames each convolution
needs), a frame would cost ~25 small convolutions, a ``torch.cat`` of history per convolution and
the Python dispatch of every block: far more than its arithmetic. Here the
network is flattened once (weights snapshot, inference only) into one node per convolution
(stem, bottlenecks, the multidilated layers, head), and a frame is, per node:

1. batch norm (folded to a per-channel scale and shift) and ReLU of the node's input, written
   once into the node's buffer of past activations ``(D - 1 + M, rows, F + 2P)`` at position
   ``D - 1 + t mod M``; every M frames the last ``D - 1`` frames move to the front, so the last D
   frames are always adjacent in storage (zero margins of ``P`` bins give the "same" frequency
   padding; a fresh buffer is the causal zero padding of the offline network);
2. per dilation group, one strided copy of its im2col rows (channel, time tap, frequency tap)
   ``x F`` out of the ring: time taps ``d_t`` frames apart and frequency taps ``d_f`` bins
   apart are uniform strides of one view (the views for each ring position are precomputed);
3. one ``addmm`` with the fused real weight ``[[Wr, -Wi], [Wi, Wr]]`` (columns in im2col order)
   writing the node's output rows into the frame's feature buffer, where the D2/D3 dense
   concatenations are just row ranges (no ``pseudo_cat``).

The output equals the module-by-module network to float32 rounding (tests compare streaming
with offline processing). Channel order inside the program: each produced tensor keeps its own
[real; imaginary] rows together; batch-norm parameters and weight columns are permuted to match.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from convsuite.audio.model import D3AEC
from convsuite.audio.stft import N_FFT
from convsuite.core_ops.layers.pseudocomplex_d3 import (
    CausalPseudoComplexConv2d,
    PseudoComplexD2Block,
    PseudoComplexMultiDilatedConv2d,
)

__all__ = ["FrameProgram"]

_EPS = 1e-8  # as in convsuite.audio.model.compress / bounded_mask
_SPAN = 64  # M (at least D): frames written between two moves of a buffer's history to its front


@dataclass(frozen=True)
class _Part:
    """A produced pseudo-complex tensor in the feature buffer: rows [row, row + 2 channels)."""

    row: int
    channels: int


@dataclass
class _Node:
    """One convolution of the program (see the module docstring)."""

    source: Tensor  # (rows, F): the input's feature rows in act order
    gathered: Tensor  # (rows, F): those rows (a view of the features when contiguous)
    index: Tensor | None  # feature rows to gather into ``gathered``, None when it is a view
    scale: Tensor  # (rows, F) folded batch-norm scale, act order, materialized
    shift: Tensor
    ring: Tensor  # (D - 1 + M, rows, F + 2P): frame t at D - 1 + t mod M
    history: int  # D - 1, the frames moved to the front every M frames
    slots: list[Tensor]  # per position s = t mod M: (rows, F) view of the interior
    copies: list[list[tuple[Tensor, Tensor]]]  # per s: (im2col block, strided ring view)
    x: Tensor  # (K, F) the im2col matrix (for 1x1 convolutions the current slot itself)
    weight: Tensor  # (2 C_out, K)
    bias: Tensor  # (2 C_out, 1)
    out: Tensor  # (2 C_out, F) view of the node's output rows in the feature buffer


def _fused(conv: CausalPseudoComplexConv2d) -> tuple[Tensor, Tensor]:
    """Real block weight (2 C_out, 2 C_in, k_t, k_f) and bias (2 C_out,) of one convolution."""
    inner = conv.conv
    wr, wi = inner.weight_real.detach().float(), inner.weight_imag.detach().float()
    weight = torch.cat([torch.cat([wr, -wi], 1), torch.cat([wi, wr], 1)], 0)
    if inner.bias_real is None:
        return weight, weight.new_zeros(weight.shape[0])
    bias = torch.cat([inner.bias_real, inner.bias_imag]).detach().float()
    return weight, bias


def _folded(norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Eval-mode batch norm as ``x * scale + shift`` per channel."""
    scale = norm.running_var.float().add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight.detach().float()
    shift = -norm.running_mean.float() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach().float()
    return scale, shift


class FrameProgram:
    """A causal :class:`D3AEC` as a per-frame program with its streaming state.

    :meth:`step` takes one analysis frame of microphone and far-end samples and returns the
    near-end spectrum of that frame, equal to frame t of the offline network's output when fed
    frames 0..t in order. :meth:`reset` starts a new stream (silence before it).

    Args:
        network: a causal :class:`D3AEC`; its weights and batch-norm statistics are copied now
            (later changes to the network are not seen).
        device: torch device of the program's buffers.
    """

    def __init__(self, network: D3AEC, device: str | torch.device = "cpu") -> None:
        if not network.config.causal:
            raise ValueError("only a causal network (config.causal=True) can stream")
        self.compression = network.config.compression
        self.bins = N_FFT // 2 + 1
        self.device = torch.device(device)
        self._rows = 0
        self._specs: list[tuple] = []
        with torch.inference_mode():
            self._compile(network)
            self.features = torch.zeros(self._rows, self.bins, device=self.device)
            self.nodes = [self._build(*spec) for spec in self._specs]
            self.head_rows = self.features[self.head.row : self.head.row + 4]
            self.window = torch.hann_window(N_FFT, periodic=True, device=self.device)
        self.frame = 0

    # -- compilation ------------------------------------------------------------------------

    def _part(self, channels: int) -> _Part:
        part = _Part(self._rows, channels)
        self._rows += 2 * channels
        return part

    def _add(
        self,
        parts: list[_Part],
        norm: nn.BatchNorm2d | None,
        convs: list[CausalPseudoComplexConv2d],
        groups: list[int],
        channels_out: int,
    ) -> _Part:
        out = self._part(channels_out)
        self._specs.append((parts, norm, convs, groups, out))
        return out

    def _compile(self, net: D3AEC) -> None:
        stem_in = self._part(2)  # the compressed (mic, far) spectra: written by step()
        features = [self._add([stem_in], None, [net.stem], [2], net.stem.out_channels)]
        for block in net.body.blocks:
            assert isinstance(block, PseudoComplexD2Block)
            x = list(features)
            if block.bottleneck is not None:
                norm, _, conv = block.bottleneck
                width = sum(p.channels for p in x)
                x = [self._add(x, norm, [conv], [width], conv.out_channels)]
            outputs: list[_Part] = []
            for layer in block.layers:
                norm, _, multi = layer
                assert isinstance(multi, PseudoComplexMultiDilatedConv2d)
                groups = [sum(p.channels for p in x), *[p.channels for p in outputs]]
                part = self._add(x + outputs, norm, list(multi.convs), groups, multi.out_channels)
                outputs.append(part)
            features += outputs[-block.out_layers :]
        norm, _, conv = net.head
        width = sum(p.channels for p in features)
        self.head = self._add(features, norm, [conv], [width], conv.out_channels)
        self.stem_in = stem_in

    def _build(
        self,
        parts: list[_Part],
        norm: nn.BatchNorm2d | None,
        convs: list[CausalPseudoComplexConv2d],
        groups: list[int],
        out: _Part,
    ) -> _Node:
        bins, device, features = self.bins, self.device, self.features
        # Act row a (parts' [real; imag] rows in turn) is complex channel channel[a] of the
        # node's input (pseudo_cat order over the parts), half[a] 0 real, 1 imaginary.
        feature_rows, channel, half = [], [], []
        offset = 0
        for p in parts:
            for h in (0, 1):
                feature_rows += range(p.row + h * p.channels, p.row + (h + 1) * p.channels)
                channel += range(offset, offset + p.channels)
                half += [h] * p.channels
            offset += p.channels
        rows, total = len(feature_rows), offset
        first = feature_rows[0]
        index = None
        if feature_rows == list(range(first, first + rows)):
            source = features[first : first + rows]
        else:
            index = torch.tensor(feature_rows, device=device)
            source = torch.zeros(rows, bins, device=device)
        scale, shift = torch.ones(rows), torch.zeros(rows)
        if norm is not None:
            pseudo = torch.tensor([h * total + k for k, h in zip(channel, half, strict=True)])
            scale, shift = (v[pseudo] for v in _folded(norm))
        depth = max((c.conv.kernel_size[0] - 1) * c.conv.dilation[0] + 1 for c in convs)
        pad = max(c.conv.dilation[1] * (c.conv.kernel_size[1] // 2) for c in convs)
        width = bins + 2 * pad
        one_by_one = depth == 1 and pad == 0 and len(convs) == 1
        span = 1 if one_by_one else max(_SPAN, depth)
        ring = torch.zeros(depth - 1 + span, rows, width, device=device)
        slots = [ring[depth - 1 + s, :, pad : pad + bins] for s in range(span)]
        weights, blocks = [], []  # blocks: (first act row, rows, k_t, k_f, d_t, d_f)
        group_start = [sum(groups[:g]) for g in range(len(groups))]
        bias = _fused(convs[0])[1]  # the multidilated sum has one bias, the first group's
        for g, conv in enumerate(convs):
            weight, _ = _fused(conv)
            (k_t, k_f), (d_t, d_f) = conv.conv.kernel_size, conv.conv.dilation
            lo, hi = group_start[g], group_start[g] + groups[g]
            members = [a for a in range(rows) if lo <= channel[a] < hi]
            if members != list(range(members[0], members[0] + len(members))):
                raise ValueError("a convolution group's channels must be adjacent")
            for a in members:
                column = half[a] * groups[g] + channel[a] - group_start[g]
                weights.append(weight[:, column].reshape(weight.shape[0], -1))
            blocks.append((members[0], len(members), k_t, k_f, d_t, d_f))
        weight = torch.cat(weights, 1).to(device)
        x = torch.zeros(weight.shape[1], bins, device=device)
        copies: list[list[tuple[Tensor, Tensor]]] = []
        for s in range(0 if one_by_one else span):
            pairs, row = [], 0
            for first_row, count, k_t, k_f, d_t, d_f in blocks:
                # Frames t - (k_t - 1 - j) d_t, j = 0..k_t-1, lie at D - 1 + s - (k_t - 1 - j) d_t.
                frame = depth - 1 + s - (k_t - 1) * d_t
                view = ring.as_strided(
                    (count, k_t, k_f, bins),
                    (width, d_t * rows * width, d_f, 1),
                    frame * rows * width + first_row * width + pad - (k_f // 2) * d_f,
                )
                block = x[row : row + count * k_t * k_f].view(count, k_t, k_f, bins)
                pairs.append((block, view))
                row += count * k_t * k_f
            copies.append(pairs)
        return _Node(
            source=source,
            gathered=source,
            index=index,
            scale=scale[:, None].expand_as(slots[0]).contiguous().to(device),
            shift=shift[:, None].expand_as(slots[0]).contiguous().to(device),
            ring=ring,
            history=depth - 1,
            slots=slots,
            copies=copies,
            x=ring[0] if one_by_one else x,
            weight=weight,
            bias=bias[:, None].to(device),
            out=features[out.row : out.row + 2 * out.channels],
        )

    # -- running ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new stream: every ring back to silence."""
        with torch.inference_mode():
            for node in self.nodes:
                node.ring.zero_()
        self.frame = 0

    def step(self, mic: Tensor, far: Tensor) -> Tensor:
        """One frame: (N_FFT,) microphone and far-end samples -> near-end spectrum (F,) complex.

        The samples are one analysis frame of :func:`convsuite.audio.stft.stft` (unwindowed).
        """
        with torch.inference_mode():
            return self._step(mic, far)

    def _step(self, mic: Tensor, far: Tensor) -> Tensor:
        spec = torch.fft.rfft(torch.stack([mic, far]) * self.window)  # (2, F)
        real, imag = spec.real, spec.imag
        power = (real * real + imag * imag + _EPS).sqrt_().pow_(self.compression - 1)
        t = self.frame
        self.frame += 1
        stem = self.nodes[0].gathered  # the stem's input rows: [mic, far] real; [mic, far] imag
        torch.mul(real, power, out=stem[:2])
        torch.mul(imag, power, out=stem[2:])
        features, addcmul, addmm, index_select = self.features, torch.addcmul, torch.addmm, None
        for node in self.nodes:
            position = t % len(node.slots)
            if position == 0 and t and node.history:  # the last D - 1 frames move to the front
                node.ring[: node.history].copy_(node.ring[-node.history :])
            slot = node.slots[position]
            if index_select is None:  # the stem: its input is not normalized
                slot.copy_(node.source)
                index_select = torch.index_select
            else:
                if node.index is not None:
                    index_select(features, 0, node.index, out=node.gathered)
                addcmul(node.shift, node.source, node.scale, out=slot).relu_()
            if node.copies:
                for block, view in node.copies[position]:
                    block.copy_(view)
            addmm(node.bias, node.weight, node.x, out=node.out)
        raw = self.head_rows  # [echo, noise] real; [echo, noise] imaginary
        mask_real, mask_imag = raw[:2], raw[2:]
        magnitude = (mask_real * mask_real + mask_imag * mask_imag + _EPS).sqrt()
        bound = torch.tanh(magnitude).div_(magnitude)
        masks = torch.complex(mask_real * bound, mask_imag * bound)
        return masks[1] * (masks[0] * spec[0])
