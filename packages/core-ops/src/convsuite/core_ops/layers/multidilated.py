"""Multidilated convolution and the densely connected D2 / D3 blocks of D3Net.

After Takahashi & Mitsufuji, "Densely connected multidilated convolutional networks for dense
prediction tasks", CVPR 2021, and the authors' NNabla code (sony/ai-research-code, ``d3net/``).
The paper's blocks are 2-D; ``spatial_dims`` selects 1-D or 3-D convolutions through the same code.
A convolution factory gives the branches another padding than zeros (circular, reflect, the
neighbouring faces of a HEALPix map), and two switches give the parallel dilated branches of
ASPP-style context blocks (every branch sees the whole input, outputs concatenated).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from convsuite.core_ops.layers.factories import batch_norm_class, check_spatial_dims, conv_class

__all__ = [
    "BlockFactory",
    "Concat",
    "ConvFactory",
    "D2Block",
    "D3Block",
    "MultiDilatedConv2d",
    "same_padding_conv",
]

ConvFactory = Callable[..., nn.Module]
"""``factory(in_channels, out_channels, kernel_size, dilation=d, bias=b)`` -> a convolution that
keeps the spatial size (it pads its input itself), e.g. ``HEALPixConv2d``."""

BlockFactory = Callable[..., nn.Module]
"""``factory(in_channels, growth_rate, num_layers, kernel_size, out_layers, bottleneck_channels)``
-> a D2 block (positional arguments as :class:`D2Block`'s) with an ``out_channels`` attribute."""

Concat = Callable[[Sequence[torch.Tensor]], torch.Tensor]
"""Joins feature tensors on the channel axis (``torch.cat(features, dim=1)`` for plain channels)."""


def _channel_cat(features: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat(list(features), dim=1)


def same_padding_conv(spatial_dims: int = 2) -> ConvFactory:
    """The default :data:`ConvFactory`: ``nn.Conv1d/2d/3d`` with "same" zero padding
    ``dilation * (kernel_size // 2)``."""
    conv = conv_class(check_spatial_dims(spatial_dims))

    def make(
        in_channels: int, out_channels: int, kernel_size: int, *, dilation: int, bias: bool
    ) -> nn.Module:
        padding = dilation * (kernel_size // 2)
        return conv(
            in_channels, out_channels, kernel_size, padding=padding, dilation=dilation, bias=bias
        )

    return make


class MultiDilatedConv2d(nn.Module):
    """Multidilated convolution: each group of input channels is convolved at its own dilation.

    Follows Takahashi & Mitsufuji, CVPR 2021, Sec. 3 and Fig. 1(b): the input channels are split
    into groups ``x_0, ..., x_{G-1}`` (in a D2 block: the block input and the outputs of the
    preceding layers) and ``y = sum_g W_g *_{d_g} x_g``, a k x k convolution of group g at dilation
    ``d_g`` with "same" zero padding. One bias for the sum.

    Parallel dilated branches (ASPP, context blocks) are the same layer with two switches:
    ``shared_input=True`` convolves the whole input in every branch (``x_g = x``), and
    ``merge="concat"`` stacks the branch outputs ``[W_0 *_{d_0} x_0, ..., W_{G-1} *_{d_{G-1}}
    x_{G-1}]`` on the channel axis instead of summing them (each branch then has its own bias).
    ``conv_factory`` builds each branch's convolution, padding included; its parameters are
    the branch's own (state-dict keys ``convs.<g>.weight`` whatever the factory, as long as it
    returns a convolution module such as ``nn.Conv2d`` or ``HEALPixConv2d``).

    Args:
        in_channels: C_in, the total input channels.
        out_channels: C_out, the output channels (per branch with ``merge="concat"``).
        kernel_size: k, odd.
        dilations: d_g per group; default ``(1, 2, 4, ..., 2^(G-1))``; required with
            ``shared_input``.
        in_groups: channels per group (summing to C_in); default C_in split evenly into
            ``len(dilations)`` groups (one group when both are omitted). Not with
            ``shared_input``.
        bias: add a learned bias.
        spatial_dims: 2 as in the paper; 1 or 3 for sequences or volumes (for the default
            ``conv_factory``).
        conv_factory: builds the branch convolutions (:data:`ConvFactory`); default
            :func:`same_padding_conv` of ``spatial_dims``.
        shared_input: every branch convolves all C_in channels.
        merge: ``"sum"`` (the paper) or ``"concat"``.

    Shapes:
        input (N, C_in, *spatial) -> output (N, C_out, *spatial), or (N, G * C_out, *spatial) with
        ``merge="concat"``; spatial sizes unchanged. ``self.out_channels`` holds the count.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        dilations: Sequence[int] | None = None,
        in_groups: Sequence[int] | None = None,
        bias: bool = True,
        *,
        spatial_dims: int = 2,
        conv_factory: ConvFactory | None = None,
        shared_input: bool = False,
        merge: Literal["sum", "concat"] = "sum",
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for 'same' padding, got {kernel_size}")
        if merge not in ("sum", "concat"):
            raise ValueError(f"merge must be 'sum' or 'concat', got {merge!r}")
        if shared_input:
            if dilations is None or in_groups is not None:
                raise ValueError("shared_input takes dilations (one branch each) and no in_groups")
            branch_inputs = [in_channels] * len(dilations)
        else:
            if in_groups is None:
                count = len(dilations) if dilations is not None else 1
                if in_channels % count:
                    raise ValueError(
                        f"in_channels={in_channels} does not split into {count} groups"
                    )
                in_groups = [in_channels // count] * count
            if dilations is None:
                dilations = [2**g for g in range(len(in_groups))]
            if len(dilations) != len(in_groups) or sum(in_groups) != in_channels:
                raise ValueError(
                    f"need one dilation per group and groups summing to in_channels={in_channels}; "
                    f"got in_groups={list(in_groups)}, dilations={list(dilations)}"
                )
            branch_inputs = [int(c) for c in in_groups]
        self.in_groups = None if shared_input else tuple(branch_inputs)
        self.dilations = tuple(int(d) for d in dilations)
        self.merge = merge
        self.out_channels = out_channels * (len(self.dilations) if merge == "concat" else 1)
        factory = conv_factory or same_padding_conv(spatial_dims)
        self.convs = nn.ModuleList(
            factory(
                c,
                out_channels,
                kernel_size,
                dilation=d,
                bias=bias and (merge == "concat" or g == 0),
            )
            for g, (c, d) in enumerate(zip(branch_inputs, self.dilations, strict=True))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_groups is None:
            parts: Sequence[torch.Tensor] = [x] * len(self.convs)
        else:
            parts = torch.split(x, self.in_groups, dim=1)
        if self.merge == "concat":
            return torch.cat([conv(p) for conv, p in zip(self.convs, parts, strict=True)], dim=1)
        out = self.convs[0](parts[0])
        for conv, part in zip(self.convs[1:], parts[1:], strict=True):
            out = out + conv(part)
        return out

    def extra_repr(self) -> str:
        groups = "shared" if self.in_groups is None else self.in_groups
        return f"in_groups={groups}, dilations={self.dilations}, merge={self.merge!r}"


def _norm_act_conv(spatial_dims: int, in_channels: int, conv: nn.Module) -> nn.Sequential:
    """BN -> ReLU -> conv, the pre-activation unit of DenseNet and D3Net."""
    return nn.Sequential(batch_norm_class(spatial_dims)(in_channels), nn.ReLU(), conv)


class D2Block(nn.Module):
    """D2 block: a DenseNet block whose layers use multidilated convolution.

    Follows Takahashi & Mitsufuji, CVPR 2021, Sec. 3 and Fig. 1(a). Layer l (0-based) receives the
    concatenation ``[x, y_0, ..., y_{l-1}]`` of the block input and all previous layers' outputs and
    applies BN -> ReLU -> :class:`MultiDilatedConv2d` with ``growth_rate`` outputs, where the block
    input is convolved at dilation 1 and ``y_i`` at dilation ``2^(i+1)`` (group g at ``2^g``). So
    every layer sees each feature at the resolution it was made at (no aliasing from dilating
    already-dilated features with gaps), and the receptive field of ``y_l`` has radius
    ``(2^(l+1) - 1) * (k // 2)``, exponential in depth.

    Output, as in the official code (``dilated_dense_block``): the concatenation
    ``[y_{L-m}, ..., y_{L-1}]`` of the last ``m = out_layers`` layers' outputs, in layer order; the
    block input is not part of it. ``out_layers=None`` (all layers, the official segmentation
    setting) gives ``num_layers * growth_rate`` channels; the official music model uses 1. Each
    layer has its own BN over its whole input (the paper's DenseNet form; the official code shares
    one BN per feature group between layers, an implementation shortcut).

    Args:
        in_channels: C_in.
        growth_rate: g, channels each layer adds.
        num_layers: L.
        kernel_size: k, odd.
        out_layers: m, how many of the last layers' outputs to return (1..L); None for all.
        bottleneck_channels: if set and smaller than C_in, a BN -> ReLU -> 1x1 conv first reduces
            the input to this many channels (the official code uses ``4 * g``).
        spatial_dims: 2 as in the paper; 1 or 3 for sequences or volumes.

    Shapes:
        input (N, C_in, *spatial) -> output (N, m * g, *spatial); ``self.out_channels == m * g``.
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
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        out_layers = num_layers if out_layers is None else out_layers
        if not 1 <= out_layers <= num_layers:
            raise ValueError(f"out_layers must be in 1..{num_layers}, got {out_layers}")
        self.out_layers = out_layers
        self.out_channels = out_layers * growth_rate
        self.bottleneck: nn.Module | None = None
        if bottleneck_channels is not None and bottleneck_channels < in_channels:
            conv = conv_class(spatial_dims)(in_channels, bottleneck_channels, 1)
            self.bottleneck = _norm_act_conv(spatial_dims, in_channels, conv)
            in_channels = bottleneck_channels
        layers = []
        for layer in range(num_layers):
            groups = [in_channels] + [growth_rate] * layer
            conv = MultiDilatedConv2d(
                sum(groups), growth_rate, kernel_size, in_groups=groups, spatial_dims=spatial_dims
            )
            layers.append(_norm_act_conv(spatial_dims, sum(groups), conv))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bottleneck is not None:
            x = self.bottleneck(x)
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features[-self.out_layers :], dim=1)


class D3Block(nn.Module):
    """D3 block: D2 blocks connected densely (a dense block of dense blocks).

    Follows Takahashi & Mitsufuji, CVPR 2021, Sec. 3 (D3 block), in the form of the official
    semantic-segmentation code (``d3_block``): D2 block b receives the concatenation of the D3
    block input and the outputs of D2 blocks 0..b-1, each D2 block first reducing its input to
    ``bottleneck_factor * growth_rate`` channels with a 1x1 bottleneck when it is wider. The
    official block's optional 1x1 compression after each D2 block (``block_comp``) is not included.

    Output: the concatenation ``[x, z_0, ..., z_{B-1}]`` of the block input and all D2 outputs,
    as in the official code and in DenseNet: ``C_in + B * m * g`` channels.

    Args:
        in_channels: C_in.
        growth_rate: g, channels each D2 layer adds.
        num_layers: L, layers per D2 block.
        num_blocks: B, D2 blocks.
        kernel_size: k, odd.
        out_layers: m, layers each D2 block returns (see :class:`D2Block`); None for all L.
        bottleneck_factor: bottleneck width in units of g (official: 4); None for no bottleneck.
        spatial_dims: 2 as in the paper; 1 or 3 for sequences or volumes (for the default
            ``block_factory``).
        block_factory: builds each D2 block (:data:`BlockFactory`); default :class:`D2Block` of
            ``spatial_dims``. Another layout of channels (pseudo-complex [real..., imag...] pairs,
            :mod:`.pseudocomplex_d3`) comes with its own D2 block and ``concat``.
        concat: joins a list of feature tensors on the channel axis (:data:`Concat`); default
            ``torch.cat(features, dim=1)``.

    Shapes:
        input (N, C_in, *spatial) -> output (N, C_in + B * m * g, *spatial);
        ``self.out_channels`` holds that channel count.
    """

    def __init__(
        self,
        in_channels: int,
        growth_rate: int,
        num_layers: int,
        num_blocks: int,
        kernel_size: int = 3,
        out_layers: int | None = None,
        bottleneck_factor: int | None = 4,
        *,
        spatial_dims: int = 2,
        block_factory: BlockFactory | None = None,
        concat: Concat | None = None,
    ) -> None:
        super().__init__()
        if block_factory is None:
            block_factory = functools.partial(D2Block, spatial_dims=spatial_dims)
        bottleneck = None if bottleneck_factor is None else bottleneck_factor * growth_rate
        blocks = []
        channels = in_channels
        for _ in range(num_blocks):
            block = block_factory(
                channels, growth_rate, num_layers, kernel_size, out_layers, bottleneck
            )
            blocks.append(block)
            channels += block.out_channels
        self.blocks = nn.ModuleList(blocks)
        self.out_channels = channels
        self.concat: Concat = concat or _channel_cat

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for block in self.blocks:
            features.append(block(self.concat(features)))
        return self.concat(features)
