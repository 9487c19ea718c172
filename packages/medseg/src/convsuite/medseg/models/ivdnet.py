"""IVD-Net: a multi-modal, densely connected UNet for intervertebral discs in Dixon MRI.

Dolz, Desrosiers & Ben Ayed, "IVD-Net: Intervertebral disc localization and segmentation in MRI with
a multi-modal UNet", MICCAI 2018 IVDM3Seg challenge (arXiv 1811.08305, Fig. 2); the layer widths,
blocks and skip averaging follow the authors' code (josedolz/IVD-Net, ``IVD_Net.py``,
``IVD_Net_asym``):

- one encoder path per Dixon modality (fat, in-phase, opposed-phase, water), widths
  ``ngf * (1, 2, 4, 8)`` per level and a bridge of ``16 ngf`` (32 ... 256 and 512 in the paper);
- dense connections across paths (HyperDenseNet style): level l + 1 of path p reads the 2x
  max-pooled outputs of all four paths at level l, its own first and the others in cyclic order,
  plus (from level 3 on) the input of level l of path p, downsampled; with ``ngf = 32`` these are
  128, 384, 896 and, for the bridge, 1920 input channels;
- encoder blocks: :class:`~convsuite.core_ops.layers.InceptionDilatedBlock` with factorized
  (k x 1, 1 x k) branches k = 1, 3, 5, 3 dilated 2, 3 dilated 4; decoder blocks the same with
  square kernels;
- decoder: 3 x 3 transposed convolutions (stride 2) + BN + ReLU; each skip is the average of the
  upsampled map and the four paths' encoder maps of that level; a 3 x 3 convolution to the classes.

One deliberate deviation: the reference carries the input of level l into level l + 1 by taking
the centre crop of the twice-larger map (``croppCenter``), which pairs each pixel with features
of another place (the crop covers the middle half of the image only). We downsample it with the
same 2x max-pool as the outputs instead, so every concatenated map is aligned; the channel counts
(and so the parameter count, 54.31 M for ``paper``) are those of the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import Pretrained, register_model
from convsuite.core_ops.layers import InceptionDilatedBlock
from convsuite.medseg.data.ivdm3seg import MODALITIES
from convsuite.medseg.models.volume_segmenter import VolumeSegmenter

LEVELS = 4


@dataclass(frozen=True)
class IVDNetConfig(ModelConfig):
    """Architecture of IVD-Net; defaults are the paper's (``ngf`` 32: 54.31 M parameters).

    Attributes:
        ngf: width of the first level; levels have ``ngf * (1, 2, 4, 8)``, the bridge ``16 ngf``.
        modalities: one encoder path per input channel, in channel order.
        classes: output channels (2: background and disc, softmax).
        branches: (kernel, dilation) of the blocks' parallel branches.
        slice_size: side of the 2-D sagittal slices the weights were trained on, pixels (the
            network takes any multiple of 16).
        pixel_mm: in-plane pixel size the weights expect, mm (IVDM3Seg: 1.25).
    """

    ngf: int = 32
    modalities: tuple[str, ...] = MODALITIES
    classes: int = 2
    branches: tuple[tuple[int, int], ...] = ((1, 1), (3, 1), (5, 1), (3, 2), (3, 4))
    slice_size: int = 256
    pixel_mm: float = 1.25

    def __post_init__(self) -> None:
        if self.ngf < 1 or self.classes < 2 or not self.modalities or not self.branches:
            raise ValueError("ngf >= 1, classes >= 2 and at least one modality and branch needed")
        if self.slice_size % 2**LEVELS or self.slice_size < 2**LEVELS:
            raise ValueError(f"slice_size must be a multiple of 16, got {self.slice_size}")
        if self.pixel_mm <= 0:
            raise ValueError(f"pixel_mm must be positive, got {self.pixel_mm}")


def _pool(x: torch.Tensor) -> torch.Tensor:
    """``F.max_pool2d(x, 2)`` as two elementwise maxima of strided views (rows, then columns):
    (N, C, H, W) -> (N, C, H // 2, W // 2), same forward values and memory format (an odd last
    row or column is dropped, as there). The gradient is max_pool2d's where a window's maximum is
    unique; on ties ``torch.maximum`` splits it between the tied elements where max_pool2d gives it
    all to the first (after a ReLU the ties are mostly zeros, whose gradient the ReLU drops).

    torch's max-pool kernel is slow at this network's few channels: (6, 4, 128, 128) float32
    1.8 ms against 0.13 ms, bfloat16 channels-last 1.9 against 0.23 ms (one thread)."""
    height, width = x.shape[-2:]
    rows = torch.maximum(x[..., 0 : height - 1 : 2, :], x[..., 1:height:2, :])
    return torch.maximum(rows[..., 0 : width - 1 : 2], rows[..., 1:width:2])


def _decoder_up(in_channels: int, out_channels: int) -> nn.Sequential:
    """3 x 3 transposed convolution, stride 2 (output exactly twice the size), BN, ReLU."""
    return nn.Sequential(
        nn.ConvTranspose2d(in_channels, out_channels, 3, 2, padding=1, output_padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@register_model(
    "ivdnet",
    presets={
        "paper": IVDNetConfig(),
        "small": IVDNetConfig(ngf=4, slice_size=128, pixel_mm=2.5),
        "tiny": IVDNetConfig(ngf=2, branches=((1, 1), (3, 1), (3, 2)), slice_size=64, pixel_mm=2.5),
    },
)
class IVDNet(VolumeSegmenter, Pretrained, nn.Module):
    """IVD-Net: (B, M, H, W) normalized Dixon slices -> (B, classes, H, W) logits.

    H and W must be multiples of 16. Load the bundled weights with
    ``IVDNet.from_pretrained("ivdnet_small")``; ``net.segment(image, affine)`` runs them over a
    whole volume and returns the disc labels and the discs
    (:class:`~convsuite.medseg.models.volume_segmenter.VolumeSegmenter`).

    Args:
        config: architecture (:class:`IVDNetConfig`).
    """

    config_class = IVDNetConfig
    bundled_package = "convsuite.medseg"
    default_weights = "ivdnet_small"
    # bf16 inference converts the 4-channel first level too (core-ops precision's
    # BF16_MIN_CHANNELS): at (6, 4, 128, 128) its convolutions run 1.2-3x faster in bf16
    # channels-last than in float32 (the 1 x 1 4 -> 4 ones 0.7x), and a float32 level would
    # promote the bf16 maps concatenated with it back to float32.
    _convsuite_bf16_min_channels = 1

    def __init__(self, config: IVDNetConfig) -> None:
        super().__init__()
        self.config = config
        paths, ngf, branches = len(config.modalities), config.ngf, config.branches
        widths = [ngf * 2**level for level in range(LEVELS)]
        inputs = [1]
        for level in range(1, LEVELS + 1):
            carried = inputs[-1] if level > 1 else 0
            inputs.append(paths * widths[level - 1] + carried)
        self.encoders = nn.ModuleList(
            nn.ModuleList(
                InceptionDilatedBlock(inputs[level], widths[level], branches, asymmetric=True)
                for level in range(LEVELS)
            )
            for _ in range(paths)
        )
        self.bridge = InceptionDilatedBlock(inputs[LEVELS], 16 * ngf, branches, asymmetric=True)
        ups, blocks, width = [], [], 16 * ngf
        for level in reversed(range(LEVELS)):
            ups.append(_decoder_up(width, widths[level]))
            blocks.append(
                InceptionDilatedBlock(widths[level], widths[level], branches, asymmetric=False)
            )
            width = widths[level]
        self.ups, self.decoders = nn.ModuleList(ups), nn.ModuleList(blocks)
        self.head = nn.Conv2d(ngf, config.classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        paths = len(self.encoders)
        level_inputs = [x[:, p : p + 1] for p in range(paths)]
        skips: list[list[torch.Tensor]] = []
        for level in range(LEVELS):
            outputs = [self.encoders[p][level](level_inputs[p]) for p in range(paths)]
            skips.append(outputs)
            pooled = [_pool(out) for out in outputs]
            carried = [_pool(inp) for inp in level_inputs] if level > 0 else None
            level_inputs = [
                torch.cat(
                    [*(pooled[(p + q) % paths] for q in range(paths))]
                    + ([carried[p]] if carried is not None else []),
                    dim=1,
                )
                for p in range(paths)
            ]
        h = self.bridge(level_inputs[0])
        for up, block, outputs in zip(self.ups, self.decoders, reversed(skips), strict=True):
            h = block((up(h) + sum(outputs)) / (paths + 1))
        return self.head(h)
