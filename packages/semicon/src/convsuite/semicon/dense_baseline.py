"""The binned baseline: wafer maps binned to a small dense image and classified by a dense CNN.

The paper (Frittoli et al., arXiv:2208.14071) compares its full-resolution sparse network with
traditional CNNs that need "a preliminary binning" of the defect map to a small image. This is that
baseline: each map becomes a ``bins`` x ``bins`` image of ``log1p`` defect counts
(:meth:`WaferMap.binned`), classified by a VGG-like CNN (ours: 3 x 3 conv + BN + ReLU, 2 x 2 max
pools, global average pool). It has the interface of
:class:`~convsuite.semicon.model.SparseWaferNet` (``features`` -> (B, feature_dim), ``forward``
-> logits), so the novelty detector and the monitor run on either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import Pretrained, register_model
from convsuite.semicon.data import PATTERNS, WaferMap

__all__ = ["DenseWaferConfig", "DenseWaferNet", "batch_binned"]


@dataclass(frozen=True)
class DenseWaferConfig(ModelConfig):
    """Architecture of :class:`DenseWaferNet`.

    Attributes:
        bins: side of the binned input image (64: the usual WM-811K-like resolution).
        widths: channels of each stage; a 2 x 2 max pool follows every stage but the last.
        classes: the known pattern names, in logit order.
        feature_dim: size of the penultimate feature vector.
    """

    bins: int = 64
    widths: tuple[int, ...] = (16, 32, 48, 64)
    classes: tuple[str, ...] = PATTERNS
    feature_dim: int = 64

    def __post_init__(self) -> None:
        for name in ("widths", "classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be >= 1 channel per stage, got {self.widths}")
        if self.bins % 2 ** (len(self.widths) - 1):
            raise ValueError(f"bins {self.bins} must be divisible by 2^(stages - 1)")
        if len(self.classes) < 2 or len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes must be >= 2 distinct names, got {self.classes}")

    @property
    def n_classes(self) -> int:
        """Number of known classes (logits)."""
        return len(self.classes)


def batch_binned(
    maps: Sequence[WaferMap], bins: int, transforms: Sequence[int] | None = None
) -> Tensor:
    """(B, 1, bins, bins) float32 ``log1p`` of each map's defect counts per bin.

    Args:
        maps: B wafer maps.
        bins: side of the image.
        transforms: per map, one of the 8 symmetries of the square (as
            :func:`convsuite.semicon.model.wafer_coords`), for augmentation.
    """
    images = np.stack([np.log1p(wafer.binned(bins)) for wafer in maps]) if maps else None
    if images is None:
        return torch.zeros(0, 1, bins, bins)
    batch = torch.from_numpy(images)[:, None]
    if transforms is not None:
        batch = torch.stack(
            [_symmetry(image, t) for image, t in zip(batch, transforms, strict=True)]
        )
    return batch


def _symmetry(image: Tensor, transform: int) -> Tensor:
    """(C, S, S) image under the square symmetry ``transform`` (as ``wafer_coords``)."""
    if transform >= 4:
        image = image.transpose(-1, -2)
    # wafer_coords rotates (r, c) -> (c, S - 1 - r): the new row r' = c holds old column c;
    # that is torch.rot90 with k = -1 (clockwise).
    return torch.rot90(image, -(transform % 4), dims=(-2, -1))


_PRESETS: dict[str, DenseWaferConfig] = {
    "small": DenseWaferConfig(),
    "die": DenseWaferConfig(bins=32, widths=(16, 32, 48), feature_dim=32),  # die maps (WM-811K)
    "tiny": DenseWaferConfig(bins=32, widths=(8, 16, 24), feature_dim=16),
}


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


@register_model("wafer_dense", presets=_PRESETS, default_preset="small")
class DenseWaferNet(Pretrained, nn.Module):
    """VGG-like dense CNN on binned maps; the interface of ``SparseWaferNet``.

    Registered as ``"wafer_dense"`` with the presets ``small`` (64 x 64 bins) and ``tiny`` (tests).
    No weights are bundled: load a trained monitor's with ``DenseWaferNet.from_pretrained(path)``.

    Args:
        config: the architecture.

    Shapes:
        input (B, 1, bins, bins) float32 from :func:`batch_binned`; :meth:`features` ->
        (B, feature_dim); :meth:`forward` -> (B, n_classes) logits.
    """

    config_class = DenseWaferConfig
    bundled_package = "convsuite.semicon"

    def __init__(self, config: DenseWaferConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        previous = 1
        for index, width in enumerate(config.widths):
            if index:
                layers.append(nn.MaxPool2d(2))
            layers += [_block(previous, width), _block(width, width)]
            previous = width
        self.body = nn.Sequential(*layers)
        self.project = nn.Sequential(nn.Linear(previous, config.feature_dim), nn.ReLU())
        self.n_features = self.n_novelty_features = config.feature_dim
        self.head = nn.Linear(config.feature_dim, config.n_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features (B, feature_dim)."""
        bins = self.config.bins
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, bins, bins):
            raise ValueError(
                f"expected (B, 1, {bins}, {bins}) binned maps, got {tuple(x.shape)}: build the "
                "input with batch_binned(maps, config.bins)"
            )
        return self.project(self.body(x).mean((-2, -1)))

    @property
    def novelty_blocks(self) -> list[tuple[int, int]]:
        """Column ranges of the novelty features scored apart: one, the learned features."""
        return [(0, self.n_novelty_features)]

    def novelty_features(self, x: Tensor, features: Tensor) -> Tensor:
        """What the novelty detector reads: the features themselves (B, feature_dim)."""
        return features

    def forward_head(self, features: Tensor) -> Tensor:
        """(B, feature_dim) features -> (B, n_classes) logits."""
        return self.head(features)

    def forward(self, x: Tensor) -> Tensor:
        """(B, n_classes) logits."""
        return self.forward_head(self.features(x))
