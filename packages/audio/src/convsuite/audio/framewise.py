"""A causal :class:`D3AEC` compiled into a per-frame program: one matmul per dilation group.

:class:`StreamingAEC` runs the network one 16-ms frame at a time; this is the package's one
streaming path. Called module by module on each frame (with the past frames each convolution
needs), a frame would cost ~25 small convolutions, a ``torch.cat`` of history per convolution and
the Python dispatch of every block: far more than its arithmetic. Here the network is flattened
once (weights snapshot, inference only) into one node per convolution (stem, bottlenecks, the
multidilated layers, head), and a frame is, per node:

1. batch norm (folded to a per-channel scale and shift) of the node's input, written once into
   the interior of a (rows, F + 2P) buffer whose zero margins of ``P`` bins give the "same"
   frequency padding;
2. per dilation group, ReLU and the frequency taps of this frame only in one strided pass
   (``clamp_min`` out of a view with taps ``d_f`` bins apart): (channels x k_f, F) rows;
3. one matmul of those rows with the group's weight stacked over the time taps,
   ``(k_t 2 C_out, channels k_f)``: row block ``l`` is this frame's contribution to the output
   ``l d_t`` frames later, added into the node's buffer of partial outputs (rows for frames
   t .. t + D - 2; with ``d_t = 1`` the blocks are adjacent and ``addmm_`` adds them in place);
4. the output of frame t is then complete: its partial sum plus the bias is written into the
   frame's feature buffer, where the D2/D3 dense concatenations are just row ranges (no
   ``pseudo_cat``). Every M frames the pending partial sums move to the front of their buffer.

So no history of inputs is kept or copied (the causal zero padding of the offline network is a
fresh buffer of partial sums), each input row is read by one matmul, and the working set is
small (~6 MiB, ~2 MiB read per frame): the per-frame buffers of steps 1-3 (padded activations,
gathered rows, tap copies, dilated products) are scratch shared by all nodes, which run one at a
time. The frame's analysis (window,
torch's FFT as in the offline STFT, power-law compression) and the masking run in numpy on views
of the program's buffers (numpy's per-call cost on 257 bins is a fraction of torch's). The
real/imaginary pair of every convolution is one real matmul with the fused weight
``[[Wr, -Wi], [Wi, Wr]]``. The calls of a frame are precomputed as a flat list per phase
``t mod M`` (no per-frame Python bookkeeping beyond the calls themselves).

The output equals the module-by-module network to float32 rounding (tests compare streaming
with offline processing). Channel order inside the program: each produced tensor keeps its own
[real; imaginary] rows together; batch-norm parameters and weight columns are permuted to match.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from convsuite.audio.model import D3AEC
from convsuite.audio.stft import N_FFT
from convsuite.core_ops.layers.complex import complex_block_weight
from convsuite.core_ops.layers.pseudocomplex_d3 import (
    CausalPseudoComplexConv2d,
    PseudoComplexD2Block,
    PseudoComplexMultiDilatedConv2d,
)

__all__ = ["FrameProgram"]

_EPS = 1e-8  # as in convsuite.audio.model.compress / bounded_mask
_SPAN = 32  # M: frames between two moves of a node's pending partial outputs to the front


@dataclass(frozen=True)
class _Part:
    """A produced pseudo-complex tensor in the feature buffer: rows [row, row + 2 channels)."""

    row: int
    channels: int


@dataclass
class _Group:
    """One dilation group of a convolution: the current frame's contributions to later outputs."""

    source: Tensor  # (count, k_f, F) strided view of the node's padded activations
    x: Tensor  # (count k_f, F) its copy: the current frame, frequency taps expanded (scratch)
    weight: Tensor  # (k_t 2 C_out, count k_f): row block l is time tap k_t - 1 - l (lag l d_t)
    y: Tensor | None  # (k_t 2 C_out, F) d_t > 1: product added to strided ``acc`` (scratch)
    targets: list[Tensor]  # per p = t mod M: the rows of outputs t, t + d_t, ... in ``acc``


@dataclass
class _Node:
    """One convolution of the program (see the module docstring)."""

    source: Tensor  # (rows, F) input rows in act order: a features view, or gathered (index)
    index: Tensor | None  # feature rows to gather into ``source``, None when it is a view
    scale: Tensor  # (rows, F) folded batch-norm scale, act order, materialized
    shift: Tensor
    slot: Tensor  # (rows, F) activations: interior of a scratch buffer with zero bin margins
    groups: list[_Group]  # empty for a 1x1 convolution (its input is ``slot`` itself)
    acc: Tensor  # (D - 1 + M, 2 C_out, F): partial sums of outputs t - p .. t - p + D - 2 + M
    depth: int  # D
    weight: Tensor  # (2 C_out, rows) for a 1x1 convolution
    bias: Tensor  # (2 C_out, F): the bias materialized over the bins (no broadcast per frame)
    out: Tensor  # (2 C_out, F) view of the node's output rows in the feature buffer


def _fused(conv: CausalPseudoComplexConv2d) -> tuple[Tensor, Tensor]:
    """Real block weight (2 C_out, 2 C_in, k_t, k_f) and bias (2 C_out,) of one convolution."""
    inner = conv.conv
    parts = (inner.weight_real, inner.weight_imag, inner.bias_real, inner.bias_imag)
    weight, bias = complex_block_weight(
        *(None if p is None else p.detach().float().cpu() for p in parts), inner.groups
    )
    return weight, weight.new_zeros(weight.shape[0]) if bias is None else bias


def _folded(norm: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Eval-mode batch norm as ``x * scale + shift`` per channel."""
    scale = norm.running_var.float().cpu().add(norm.eps).rsqrt()
    if norm.weight is not None:
        scale = scale * norm.weight.detach().float().cpu()
    shift = -norm.running_mean.float().cpu() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach().float().cpu()
    return scale, shift


class FrameProgram:
    """A causal :class:`D3AEC` as a per-frame program with its streaming state.

    :meth:`step` takes one analysis frame of microphone and far-end samples and returns the
    near-end spectrum of that frame, equal to frame t of the offline network's output when fed
    frames 0..t in order. :meth:`reset` starts a new stream (silence before it). The program
    runs on the CPU whatever the network's device (a frame is ~80 calls on (rows, 257) tensors:
    launch latency, not arithmetic, would rule on an accelerator). A deep copy or a pickle
    carries the stream's state and runs independently of the original.

    Args:
        network: a causal :class:`D3AEC`; its weights and batch-norm statistics are copied now
            (later changes to the network are not seen).
    """

    def __init__(self, network: D3AEC) -> None:
        if not network.config.causal:
            raise ValueError("only a causal network (config.causal=True) can stream")
        self.compression = network.config.compression
        self.bins = N_FFT // 2 + 1
        self._rows = 0
        with torch.inference_mode():
            specs = self._compile(network)
            self.features = torch.zeros(self._rows, self.bins)
            self._allocate_scratch(specs)
            self.nodes = [self._build(*spec) for spec in specs]
        # torch's FFT, as in the offline stft (numpy's differs by rounding that the network
        # amplifies to ~4e-6 of the output's peak; torch's keeps streaming within 1e-6)
        self._frames_t = torch.zeros(2, N_FFT)
        self._spec_t = torch.zeros(2, self.bins, dtype=torch.complex64)
        self.frame = 0
        self._bind()

    _BOUND = ("_stem", "_head", "_frames", "_spec", "_schedules", "_window", "_masks")

    def _bind(self) -> None:
        """The numpy views onto the program's torch buffers, where the frame's analysis and
        masking run (numpy's per-call cost on 257 bins is a fraction of torch's), and the
        calls of a frame, bound to the buffers' methods. A copy or a pickle would copy numpy
        arrays apart from the torch storages and keep the methods bound to the original's
        buffers, so neither is copied: both are bound again here (see :meth:`__setstate__`),
        with the analysis window and the masks' per-frame scratch. The rest (tensors, the
        node records, numbers) travels through :func:`torch.save`, which (unlike a plain
        pickle) keeps the many views of each scratch buffer on one storage, and is read back
        with ``weights_only=True``."""
        self._stem = self.nodes[0].source.numpy()  # [mic, far] real; [mic, far] imaginary
        self._head = self.features[self.head.row : self.head.row + 4].numpy()
        self._frames = self._frames_t.numpy()
        self._spec = self._spec_t.numpy()
        self._schedules = [self._schedule(u) for u in range(_SPAN)]
        self._window = torch.hann_window(N_FFT, periodic=True).numpy()
        self._masks = np.zeros((2, self.bins), dtype=np.complex64)

    def __getstate__(self) -> dict:
        saved = io.BytesIO()
        torch.save({k: v for k, v in self.__dict__.items() if k not in self._BOUND}, saved)
        return {"saved": saved.getvalue()}

    def __setstate__(self, state: dict) -> None:
        saved = io.BytesIO(state["saved"])
        with torch.serialization.safe_globals([_Part, _Group, _Node]):
            self.__dict__.update(torch.load(saved, weights_only=True))
        self._bind()

    # -- compilation ------------------------------------------------------------------------

    def _part(self, channels: int) -> _Part:
        part = _Part(self._rows, channels)
        self._rows += 2 * channels
        return part

    def _add(
        self,
        specs: list[tuple],
        parts: list[_Part],
        norm: nn.BatchNorm2d | None,
        convs: list[CausalPseudoComplexConv2d],
        groups: list[int],
        channels_out: int,
    ) -> _Part:
        out = self._part(channels_out)
        specs.append((parts, norm, convs, groups, out))
        return out

    def _compile(self, net: D3AEC) -> list[tuple]:
        """The nodes' specifications (parts in, norm, convolutions, groups, part out), in
        order; they hold the network's modules and are used only while the program is built."""
        specs: list[tuple] = []
        stem_in = self._part(2)  # the compressed (mic, far) spectra: written by step()
        features = [self._add(specs, [stem_in], None, [net.stem], [2], net.stem.out_channels)]
        for block in net.body.blocks:
            assert isinstance(block, PseudoComplexD2Block)
            x = list(features)
            if block.bottleneck is not None:
                norm, _, conv = block.bottleneck
                width = sum(p.channels for p in x)
                x = [self._add(specs, x, norm, [conv], [width], conv.out_channels)]
            outputs: list[_Part] = []
            for layer in block.layers:
                norm, _, multi = layer
                assert isinstance(multi, PseudoComplexMultiDilatedConv2d)
                groups = [sum(p.channels for p in x), *[p.channels for p in outputs]]
                part = self._add(
                    specs, x + outputs, norm, list(multi.convs), groups, multi.out_channels
                )
                outputs.append(part)
            features += outputs[-block.out_layers :]
        norm, _, conv = net.head
        width = sum(p.channels for p in features)
        self.head = self._add(specs, features, norm, [conv], [width], conv.out_channels)
        return specs

    def _allocate_scratch(self, specs: list[tuple]) -> None:
        """Per-frame buffers shared by all nodes (used one node at a time; the working set of a
        frame stays small): activations with zero frequency margins, gathered rows, the
        frequency-tap copies and dilated products."""
        rows, taps, products = [0], [0], [0]
        for parts, _, convs, groups, out in specs:
            rows.append(sum(2 * p.channels for p in parts))
            for conv, width in zip(convs, groups, strict=True):
                (k_t, k_f), d_t = conv.conv.kernel_size, conv.conv.dilation[0]
                taps.append(2 * width * k_f if (k_t, k_f) != (1, 1) else 0)
                products.append(k_t * 2 * out.channels if d_t > 1 else 0)
        convs = [c.conv for spec in specs for c in spec[2]]
        self._pad = max(c.dilation[1] * (c.kernel_size[1] // 2) for c in convs)
        self._padded = torch.zeros(max(rows), self.bins + 2 * self._pad)
        self._gathered = torch.zeros(max(rows), self.bins)
        self._taps = torch.zeros(max(taps), self.bins)
        self._products = torch.zeros(max(products), self.bins)

    def _build(
        self,
        parts: list[_Part],
        norm: nn.BatchNorm2d | None,
        convs: list[CausalPseudoComplexConv2d],
        groups: list[int],
        out: _Part,
    ) -> _Node:
        bins, features = self.bins, self.features
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
            source_rows = features[first : first + rows]
        else:
            index = torch.tensor(feature_rows)
            source_rows = self._gathered[:rows]
        scale, shift = torch.ones(rows), torch.zeros(rows)
        if norm is not None:
            pseudo = torch.tensor([h * total + k for k, h in zip(channel, half, strict=True)])
            scale, shift = (v[pseudo] for v in _folded(norm))
        pad, padded = self._pad, self._padded[:rows]
        slot = padded[:, pad : pad + bins]
        one_by_one = len(convs) == 1 and convs[0].conv.kernel_size == (1, 1)
        group_start = [sum(groups[:g]) for g in range(len(groups))]
        bias = _fused(convs[0])[1]  # the multidilated sum has one bias, the first group's
        depth = max((c.conv.kernel_size[0] - 1) * c.conv.dilation[0] + 1 for c in convs)
        if depth - 1 > _SPAN:  # the move of pending outputs to the front must not overlap
            raise ValueError(f"a convolution spans {depth} frames, more than {_SPAN + 1}")
        rows_out = 2 * out.channels
        acc = torch.zeros(0 if one_by_one else depth - 1 + _SPAN, rows_out, bins)
        built, weights = [], []
        for g, conv in enumerate(convs):
            weight, _ = _fused(conv)
            (k_t, k_f), (d_t, d_f) = conv.conv.kernel_size, conv.conv.dilation
            lo, hi = group_start[g], group_start[g] + groups[g]
            members = [a for a in range(rows) if lo <= channel[a] < hi]
            if members != list(range(members[0], members[0] + len(members))):
                raise ValueError("a convolution group's channels must be adjacent")
            columns = [half[a] * groups[g] + channel[a] - group_start[g] for a in members]
            block = weight[:, columns]  # (2 C_out, count, k_t, k_f)
            if one_by_one:
                weights.append(block.reshape(block.shape[0], -1))
                continue
            count = len(members)
            lagged = block.flip(2).permute(2, 0, 1, 3)  # (lag l, 2 C_out, count, k_f)
            source = padded.as_strided(
                (count, k_f, bins),
                (padded.shape[1], d_f, 1),
                members[0] * padded.shape[1] + pad - (k_f // 2) * d_f,
            )
            targets = [
                acc.as_strided(
                    (k_t, rows_out, bins),
                    (d_t * rows_out * bins, bins, 1),
                    position * rows_out * bins,
                )
                for position in range(_SPAN)
            ]
            if d_t == 1:
                targets = [target.view(-1, bins) for target in targets]
            built.append(
                _Group(
                    source=source,
                    x=self._taps[: count * k_f],
                    weight=lagged.reshape(k_t * rows_out, -1).contiguous(),
                    y=None if d_t == 1 else self._products[: k_t * rows_out],
                    targets=targets,
                )
            )
        return _Node(
            source=source_rows,
            index=index,
            scale=scale[:, None].expand_as(slot).contiguous(),
            shift=shift[:, None].expand_as(slot).contiguous(),
            slot=slot,
            groups=built,
            acc=acc,
            depth=depth,
            weight=torch.cat(weights, 1) if one_by_one else padded.new_zeros(0),
            bias=bias[:, None].expand(-1, bins).contiguous(),
            out=features[out.row : out.row + 2 * out.channels],
        )

    def _schedule(self, u: int) -> list[tuple]:
        """The calls ``(function, args, kwargs)`` of the frames t with t mod M = u, in order."""
        calls: list[tuple] = []
        for n, node in enumerate(self.nodes):
            slot = node.slot
            if n == 0:  # the stem: its input is not normalized
                calls.append((slot.copy_, (node.source,), {}))
            else:
                if node.index is not None:
                    calls.append(
                        (torch.index_select, (self.features, 0, node.index), {"out": node.source})
                    )
                calls.append((torch.addcmul, (node.shift, node.source, node.scale), {"out": slot}))
                if not node.groups:  # else the ReLU is applied by the groups' copies
                    calls.append((slot.relu_, (), {}))
            if not node.groups:
                calls.append((torch.addmm, (node.bias, node.weight, slot), {"out": node.out}))
                continue
            for group in node.groups:
                x = group.x.view(group.source.shape)
                if n == 0:
                    calls.append((x.copy_, (group.source,), {}))
                else:  # ReLU and the frequency-tap copy in one pass
                    calls.append((torch.clamp_min, (group.source, 0.0), {"out": x}))
                target = group.targets[u]
                if group.y is None:  # lags 0, 1, ..: adjacent rows of acc
                    calls.append((target.addmm_, (group.weight, group.x), {}))
                else:
                    calls.append((torch.mm, (group.weight, group.x), {"out": group.y}))
                    calls.append((target.add_, (group.y.view(target.shape),), {}))
            calls.append((torch.add, (node.acc[u], node.bias), {"out": node.out}))
            if u == _SPAN - 1:  # the pending outputs move to the front, the rest starts at 0
                history = node.depth - 1
                if history:
                    calls.append((node.acc[:history].copy_, (node.acc[_SPAN:],), {}))
                calls.append((node.acc[history:].zero_, (), {}))
        return calls

    # -- running ----------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new stream: every history back to silence."""
        with torch.inference_mode():
            for node in self.nodes:
                node.acc.zero_()
        self.frame = 0

    def step(self, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
        """One frame: (N_FFT,) microphone and far-end samples -> near-end spectrum (F,) complex64.

        The samples are one analysis frame of :func:`convsuite.audio.stft.stft` (unwindowed).
        """
        frames = self._frames
        np.multiply(mic, self._window, out=frames[0])
        np.multiply(far, self._window, out=frames[1])
        torch.fft.rfft(self._frames_t, out=self._spec_t)
        spec = self._spec  # (2, F) complex64, a view of the torch result
        real, imag = spec.real, spec.imag
        power = np.sqrt(real * real + imag * imag + _EPS)
        np.power(power, self.compression - 1, out=power)
        np.multiply(real, power, out=self._stem[:2])
        np.multiply(imag, power, out=self._stem[2:])
        t = self.frame
        self.frame += 1
        with torch.inference_mode():
            for call, args, kwargs in self._schedules[t % len(self._schedules)]:
                call(*args, **kwargs)
        raw = self._head  # [echo, noise] real; [echo, noise] imaginary
        mask_real, mask_imag = raw[:2], raw[2:]
        magnitude = np.sqrt(mask_real * mask_real + mask_imag * mask_imag + _EPS)
        bound = np.tanh(magnitude)
        np.divide(bound, magnitude, out=bound)
        masks = self._masks
        np.multiply(mask_real, bound, out=masks.real)
        np.multiply(mask_imag, bound, out=masks.imag)
        return masks[1] * (masks[0] * spec[0])
