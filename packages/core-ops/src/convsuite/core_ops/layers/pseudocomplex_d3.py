"""Pseudo-complex multidilated convolution and D2 / D3 blocks, with a causal (streaming) mode.

The pseudo-complex extension of D3Net used by Watcharasupat et al., "End-to-End Complex-Valued
Multidilated Convolutional Neural Network for Joint Acoustic Echo Cancellation and Noise
Suppression", ICASSP 2022 (arXiv 2110.00745): the blocks of :mod:`.multidilated` (Takahashi &
Mitsufuji, CVPR 2021) with every convolution replaced by the complex convolution of
:class:`~convsuite.core_ops.layers.complex.PseudoComplexConv2d` (Trabelsi et al., ICLR 2018),
on time-frequency maps ``(N, 2C, T, F)`` laid out as [real channels..., imaginary channels...].

Normalization and activation act on the real and imaginary channels separately (BatchNorm2d over
the 2C real channels, then ReLU on both parts: CReLU), so they are per-frame in eval mode.

Causal mode (``causal=True``): the time axis (dim 2) is padded on the past side only, so output
frame t depends on input frames <= t; the frequency axis keeps "same" zero padding. These modules
are the offline (whole-sequence) form; a network that runs frame by frame compiles them into its
own per-frame program (the audio package's ``framewise.FrameProgram``).

The D3 block itself is core-ops' :class:`~convsuite.core_ops.layers.multidilated.D3Block` with
this module's D2 block and :func:`pseudo_cat` (:func:`pseudo_complex_d3_block`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsuite.core_ops.layers.complex import PseudoComplexConv2d
from convsuite.core_ops.layers.multidilated import D3Block

__all__ = [
    "CausalPseudoComplexConv2d",
    "PseudoComplexD2Block",
    "PseudoComplexMultiDilatedConv2d",
    "pseudo_cat",
    "pseudo_complex_d3_block",
    "pseudo_split",
]


def _channels_last(x: Tensor) -> bool:
    """True for a 4-D tensor in channels-last layout (as bf16 inference keeps feature maps)."""
    return (
        x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and not x.is_contiguous()
    )


def _cat_channels_last(pieces: list[Tensor]) -> Tensor:
    """``torch.cat(pieces, dim=1)`` into a channels-last tensor (``torch.cat`` alone returns
    torch's default layout for slices of a one-sample batch).

    Mixed dtypes promote as ``torch.cat`` does. ``out=`` is not differentiable, so when any
    piece requires grad the result is ``torch.cat`` made channels-last (one extra copy)."""
    if torch.is_grad_enabled() and any(p.requires_grad for p in pieces):
        return torch.cat(pieces, dim=1).contiguous(memory_format=torch.channels_last)
    first = pieces[0]
    dtype = functools.reduce(torch.promote_types, (p.dtype for p in pieces))
    shape = (first.shape[0], sum(p.shape[1] for p in pieces), *first.shape[2:])
    out = torch.empty(shape, dtype=dtype, device=first.device, memory_format=torch.channels_last)
    return torch.cat(pieces, dim=1, out=out)


def pseudo_cat(parts: Sequence[Tensor]) -> Tensor:
    """Concatenate pseudo-complex tensors (N, 2C_i, ...) on the complex channel axis.

    The result (N, 2 sum C_i, ...) keeps the layout [all real channels..., all imag channels...]
    (a plain ``torch.cat`` on dim 1 would interleave the parts' real and imaginary halves).
    Channels-last inputs give a channels-last result (the same values).
    """
    if all(_channels_last(p) for p in parts):
        halves = [p.chunk(2, dim=1) for p in parts]
        return _cat_channels_last([h[0] for h in halves] + [h[1] for h in halves])
    n, _, *spatial = parts[0].shape
    halves = [p.reshape(n, 2, p.shape[1] // 2, *spatial) for p in parts]
    joined = torch.cat(halves, dim=2)
    return joined.reshape(n, joined.shape[1] * joined.shape[2], *spatial)


def pseudo_split(x: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    """Split (N, 2C, ...) into pseudo-complex parts of ``sizes`` complex channels each.

    A channels-last input gives channels-last parts (the same values)."""
    if _channels_last(x):
        real, imag = x.chunk(2, dim=1)
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        return [
            _cat_channels_last([real[:, a : a + size], imag[:, a : a + size]])
            for a, size in zip(starts, sizes, strict=True)
        ]
    n, channels, *spatial = x.shape
    halves = x.reshape(n, 2, channels // 2, *spatial).split(list(sizes), dim=2)
    return [h.reshape(n, 2 * h.shape[2], *spatial) for h in halves]


class CausalPseudoComplexConv2d(nn.Module):
    """Pseudo-complex 2-D convolution over (time, frequency), causal in time when asked.

    Input (N, 2 C_in, T, F) real [real..., imag...] -> output (N, 2 C_out, T, F), same layout.
    Frequency: "same" zero padding ``d_f * (k_f // 2)``. Time: with ``causal`` the input is padded
    with ``(k_t - 1) * d_t`` zero frames on the past side, else "same" zero padding. Parameters
    are those of the wrapped :class:`PseudoComplexConv2d` (keys ``conv.weight_real`` ...).

    Args:
        in_channels, out_channels: complex channel counts.
        kernel_size: (k_t, k_f) or one odd int for both.
        dilation: (d_t, d_f) or one int for both.
        bias: complex bias.
        causal: past-only padding in time (see above).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        dilation: int | tuple[int, int] = 1,
        bias: bool = True,
        *,
        causal: bool = True,
    ) -> None:
        super().__init__()
        k_t, k_f = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        d_t, d_f = (dilation, dilation) if isinstance(dilation, int) else dilation
        if k_f % 2 == 0 or (not causal and k_t % 2 == 0):
            raise ValueError(f"'same' padding needs odd kernel sizes, got {(k_t, k_f)}")
        self.causal = causal
        self.time_padding = (k_t - 1) * d_t if causal else 0
        time_same = 0 if causal else d_t * (k_t // 2)
        self.conv = PseudoComplexConv2d(
            in_channels,
            out_channels,
            (k_t, k_f),
            padding=(time_same, d_f * (k_f // 2)),
            dilation=(d_t, d_f),
            bias=bias,
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> Tensor:
        """(N, 2 C_in, T, F) -> (N, 2 C_out, T, F)."""
        if self.time_padding:
            x = F.pad(x, (0, 0, self.time_padding, 0))
        return self.conv(x)

    def extra_repr(self) -> str:
        return f"causal={self.causal}, time_padding={self.time_padding}"


class PseudoComplexMultiDilatedConv2d(nn.Module):
    """Multidilated convolution (Takahashi & Mitsufuji, CVPR 2021, Sec. 3) in pseudo-complex form.

    ``y = sum_g W_g *_{d_g} x_g``: complex group g of the input is convolved at dilation ``d_g``
    (in time and frequency) by a complex kernel; one complex bias for the sum.
    Input (N, 2 sum(in_groups), T, F) -> (N, 2 C_out, T, F).

    Args:
        in_groups: complex channels per group.
        out_channels: C_out, complex.
        kernel_size: k, odd (k x k kernels).
        dilations: d_g per group; default ``2^g``.
        causal: causal in time (see :class:`CausalPseudoComplexConv2d`).
    """

    def __init__(
        self,
        in_groups: Sequence[int],
        out_channels: int,
        kernel_size: int = 3,
        dilations: Sequence[int] | None = None,
        *,
        causal: bool = True,
    ) -> None:
        super().__init__()
        dilations = [2**g for g in range(len(in_groups))] if dilations is None else dilations
        if len(dilations) != len(in_groups):
            raise ValueError(f"need one dilation per group, got {in_groups} and {dilations}")
        self.in_groups = tuple(int(c) for c in in_groups)
        self.dilations = tuple(int(d) for d in dilations)
        self.out_channels = out_channels
        self.convs = nn.ModuleList(
            CausalPseudoComplexConv2d(c, out_channels, kernel_size, d, bias=(g == 0), causal=causal)
            for g, (c, d) in enumerate(zip(self.in_groups, self.dilations, strict=True))
        )

    def forward(self, x: Tensor) -> Tensor:
        parts = pseudo_split(x, self.in_groups) if len(self.in_groups) > 1 else [x]
        return self.convolve_parts(parts)

    def convolve_parts(self, parts: Sequence[Tensor]) -> Tensor:
        """The layer on its input already split into groups, (N, 2 in_groups[g], T, F) each."""
        out = self.convs[0](parts[0])
        for conv, part in zip(self.convs[1:], parts[1:], strict=True):
            out = out + conv(part)
        return out

    def extra_repr(self) -> str:
        return f"in_groups={self.in_groups}, dilations={self.dilations}"


class _NormActConv(nn.Sequential):
    """BN (per real channel) -> ReLU (CReLU on the pairs) -> pseudo-complex convolution."""

    def __init__(self, in_channels: int, conv: nn.Module) -> None:
        super().__init__(nn.BatchNorm2d(2 * in_channels), nn.ReLU(), conv)

    def forward_parts(self, parts: Sequence[Tensor]) -> Tensor:
        """Eval mode, on the input as its pseudo-complex parts (what :func:`pseudo_cat` would
        join): each part normalized with its channels' statistics and activated, the parts
        convolved as the multidilated groups they are, without joining them first (the
        join and the split cost more than the channels-last bf16 convolutions). Equal to
        ``self(pseudo_cat(parts))``."""
        norm, act, conv = self
        sizes = [p.shape[1] // 2 for p in parts]
        total = sum(sizes)
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        activated = []
        for part, start, size in zip(parts, starts, sizes, strict=True):
            # The part's real channels, then its imaginary ones (pseudo_cat's order).
            stats = [
                None
                if t is None
                else torch.cat((t[start : start + size], t[total + start : total + start + size]))
                for t in (norm.running_mean, norm.running_var, norm.weight, norm.bias)
            ]
            activated.append(act(F.batch_norm(part, *stats, False, 0.0, norm.eps)))
        return conv.convolve_parts(activated)


class PseudoComplexD2Block(nn.Module):
    """D2 block (Takahashi & Mitsufuji, CVPR 2021, Fig. 1a) with pseudo-complex convolutions.

    Layer l receives ``[x, y_0, ..., y_{l-1}]`` and applies BN -> ReLU ->
    :class:`PseudoComplexMultiDilatedConv2d` with ``growth_rate`` complex outputs, the block input
    at dilation 1 and ``y_i`` at ``2^(i+1)``. Output: the last ``out_layers`` layers' outputs (as
    :class:`~convsuite.core_ops.layers.multidilated.D2Block`). In causal mode the receptive field
    reaches ``(k - 1) (2^L - 1)`` frames into the past and none into the future.

    Args:
        in_channels: C_in, complex.
        growth_rate: g, complex channels each layer adds.
        num_layers: L.
        kernel_size: k, odd.
        out_layers: m; None for all L.
        bottleneck_channels: a BN -> ReLU -> 1x1 pseudo-complex conv to this width first, when
            narrower than C_in.
        causal: causal in time.

    Shapes:
        (N, 2 C_in, T, F) -> (N, 2 m g, T, F); ``self.out_channels == m * g`` (complex).
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        num_layers: int,
        kernel_size: int = 3,
        out_layers: int | None = None,
        bottleneck_channels: int | None = None,
        *,
        causal: bool = True,
    ) -> None:
        super().__init__()
        out_layers = num_layers if out_layers is None else out_layers
        if not 1 <= out_layers <= num_layers:
            raise ValueError(f"out_layers must be in 1..{num_layers}, got {out_layers}")
        self.out_layers = out_layers
        self.out_channels = out_layers * growth_rate
        self.bottleneck: nn.Module | None = None
        if bottleneck_channels is not None and bottleneck_channels < in_channels:
            conv = CausalPseudoComplexConv2d(in_channels, bottleneck_channels, 1, causal=causal)
            self.bottleneck = _NormActConv(in_channels, conv)
            in_channels = bottleneck_channels
        layers = []
        for layer in range(num_layers):
            groups = [in_channels] + [growth_rate] * layer
            conv = PseudoComplexMultiDilatedConv2d(groups, growth_rate, kernel_size, causal=causal)
            layers.append(_NormActConv(sum(groups), conv))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        features = [x]
        # Eval on channels-last maps (bf16 inference): each layer takes the parts unjoined.
        by_parts = (
            not self.training
            and _channels_last(x)
            and all(
                isinstance(layer[2], PseudoComplexMultiDilatedConv2d)
                and layer[2].in_groups[0] == x.shape[1] // 2
                for layer in self.layers
            )
        )
        for layer in self.layers:
            if by_parts:
                features.append(layer.forward_parts(features))
            else:
                features.append(layer(pseudo_cat(features)))
        return pseudo_cat(features[-self.out_layers :])


def pseudo_complex_d3_block(
    in_channels: int,
    growth_rate: int,
    num_layers: int,
    num_blocks: int,
    kernel_size: int = 3,
    out_layers: int | None = None,
    bottleneck_factor: int | None = 4,
    *,
    causal: bool = True,
) -> D3Block:
    """D3 block (Takahashi & Mitsufuji, CVPR 2021, Sec. 3) of :class:`PseudoComplexD2Block`.

    Core-ops' :class:`~convsuite.core_ops.layers.multidilated.D3Block` (same state-dict keys
    ``blocks.<b>...``) with pseudo-complex D2 blocks joined by :func:`pseudo_cat`: D2 block b
    receives ``[x, z_0, ..., z_{b-1}]`` (bottlenecked to ``bottleneck_factor * g`` complex
    channels when wider); output ``[x, z_0, ..., z_{B-1}]``, ``C_in + B m g`` complex channels.

    Args:
        in_channels: C_in, complex.
        growth_rate: g.
        num_layers: L per D2 block.
        num_blocks: B.
        kernel_size: k, odd.
        out_layers: m per D2 block; None for all L.
        bottleneck_factor: bottleneck width in units of g; None for none.
        causal: causal in time.

    Shapes:
        (N, 2 C_in, T, F) -> (N, 2 (C_in + B m g), T, F); ``.out_channels`` (complex).
    """
    return D3Block(
        in_channels,
        growth_rate,
        num_layers,
        num_blocks,
        kernel_size,
        out_layers,
        bottleneck_factor,
        block_factory=functools.partial(PseudoComplexD2Block, causal=causal),
        concat=pseudo_cat,
    )
