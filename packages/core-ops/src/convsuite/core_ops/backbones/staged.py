"""What ConvNeXt and UniRepLKNet share: downsample + stage pairs, a pooled LayerNorm head, timm's
``forward_features`` / ``forward_head`` split and the official truncated-normal initialization."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from convsuite.core_ops.layers.dcls import DCLSConv2d


def init_weights(module: nn.Module) -> None:
    """The official initialization: truncated normal (std 0.02) weights, zero biases."""
    if isinstance(module, nn.Conv2d | nn.Linear | DCLSConv2d):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class StagedClassifier(nn.Module):
    """Base of the four-stage classifiers: subclasses fill ``downsample_layers`` and ``stages``
    (``nn.ModuleList`` of equal length) and then call :meth:`attach_head`."""

    downsample_layers: nn.ModuleList
    stages: nn.ModuleList

    def attach_head(self, width: int, num_classes: int, head_init_scale: float) -> None:
        """Final LayerNorm and linear head (identity when ``num_classes == 0``); initialize all."""
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(init_weights)
        if isinstance(self.head, nn.Linear):
            with torch.no_grad():
                self.head.weight.mul_(head_init_scale)
                self.head.bias.mul_(head_init_scale)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, in_chans, H, W) -> last-stage feature map (N, dims[-1], H/32, W/32), channels_last."""
        x = x.contiguous(memory_format=torch.channels_last)
        for downsample, stage in zip(self.downsample_layers, self.stages, strict=True):
            x = stage(downsample(x))
        return x

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Global average pool + LayerNorm (+ linear head unless ``pre_logits``): -> (N, K)."""
        x = self.norm(x.mean(dim=(-2, -1)))
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))
