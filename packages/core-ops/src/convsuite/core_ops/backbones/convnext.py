"""ConvNeXt (Liu et al., CVPR 2022) with a selectable depthwise mixer (dense 7x7, DCLS, reparam, FFT).

Module and parameter names follow the official implementation (facebookresearch/ConvNeXt,
``models/convnext.py``: ``downsample_layers``, ``stages``, ``dwconv``, ``pwconv1``, ``gamma``, ...),
so its checkpoints load into the ``mixer="dense"`` model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from monai.networks.layers import DropPath
from torch import Tensor, nn

from convsuite.core_ops.backbones.norm import LayerNorm2d
from convsuite.core_ops.backbones.registry import register_backbone
from convsuite.core_ops.backbones.staged import StagedClassifier
from convsuite.core_ops.layers.mixer import create_mixer

__all__ = ["ConvNeXt", "ConvNeXtBlock"]


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: mixer -> LayerNorm -> Linear 4C -> GELU -> Linear C -> layer scale -> drop path.

    Liu et al., "A ConvNet for the 2020s", CVPR 2022, Fig. 4 (right) and Sec. 2: a depthwise spatial
    mixer (7x7 in the paper; any of :data:`~convsuite.core_ops.layers.mixer.MIXERS` here), then an
    inverted-bottleneck MLP on channels, residual. The MLP runs on an (N, H, W, C) view, the
    official "implementation (2)"; with channels_last input the permutes cost nothing and the
    depthwise conv runs in the layout torch's CPU kernels are fastest in.

    Args:
        dim: C, channels in and out.
        mixer: mixer name for :func:`~convsuite.core_ops.layers.mixer.create_mixer`.
        kernel_size: mixer window (dense/fft/reparam).
        mlp_ratio: hidden width of the MLP as a multiple of C (4 in the paper).
        drop_path: stochastic depth probability of this block.
        layer_scale_init_value: initial per-channel scale of the residual branch (1e-6 in the
            paper, after CaiT); 0 disables layer scale.
        mixer_kwargs: extra arguments for the mixer.

    Shapes:
        input (N, C, H, W) -> output (N, C, H, W).
    """

    def __init__(
        self,
        dim: int,
        mixer: str = "dense",
        kernel_size: int = 7,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        mixer_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.dwconv = create_mixer(mixer, dim, kernel_size, **dict(mixer_kwargs or {}))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(mlp_ratio * dim)
        self.pwconv1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, dim)
        if layer_scale_init_value > 0:
            self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
        else:
            self.register_parameter("gamma", None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        if self.gamma is not None:
            x = x * self.gamma
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))


@register_backbone("convnext_test", depths=(1, 1, 1, 1), dims=(16, 32, 64, 128))
@register_backbone("convnext_atto", depths=(2, 2, 6, 2), dims=(40, 80, 160, 320))
@register_backbone("convnext_femto", depths=(2, 2, 6, 2), dims=(48, 96, 192, 384))
@register_backbone("convnext_pico", depths=(2, 2, 6, 2), dims=(64, 128, 256, 512))
@register_backbone("convnext_nano", depths=(2, 2, 8, 2), dims=(80, 160, 320, 640))
@register_backbone("convnext_tiny", depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))
class ConvNeXt(StagedClassifier):
    """ConvNeXt image classifier with a selectable depthwise mixer.

    Liu, Mao, Wu, Feichtenhofer, Darrell, Xie, "A ConvNet for the 2020s", CVPR 2022: "patchify"
    stem (4x4 conv, stride 4, + LayerNorm; Sec. 2.2), four stages of :class:`ConvNeXtBlock` with
    stage ratio 1:1:3:1 (ConvNeXt-T: depths 3, 3, 9, 3, dims 96..768, Sec. 2.6 / Table 9),
    separate downsampling layers (LayerNorm + 2x2 conv, stride 2), then global average pooling,
    LayerNorm and a linear head. Weights are truncated-normal (std 0.02), biases zero, the head
    scaled by ``head_init_scale``. The atto/femto/pico/nano presets are timm's small variants
    (same design, fewer channels); ``convnext_test`` is a tiny preset for tests and demos.

    The trunk runs channels_last in memory (shape stays NCHW): depthwise convs and the channel MLP
    are both faster in that layout on CPU.

    Presets (registered, ``create_backbone(name, **overrides)``) and parameters with the dense 7x7
    mixer and 1000 classes: ``convnext_atto`` 3.7M, ``convnext_femto`` 5.2M, ``convnext_pico``
    9.1M, ``convnext_nano`` 15.6M, ``convnext_tiny`` 28.6M (paper Table 9 / timm).

    Args:
        in_chans: input channels.
        num_classes: classes of the linear head; 0 for no head (``forward`` returns the pooled,
            normalized features).
        depths: blocks per stage.
        dims: channels per stage.
        mixer: depthwise mixer name (see :func:`~convsuite.core_ops.layers.mixer.create_mixer`).
        kernel_size: mixer window for dense/fft/reparam (7 in the paper).
        drop_path_rate: stochastic depth, rising linearly from 0 to this over all blocks.
        layer_scale_init_value: initial layer scale (1e-6).
        head_init_scale: factor on the initial head weights and bias.
        mixer_kwargs: extra arguments for every mixer (e.g. ``{"kernel_count": 40}`` for DCLS).

    Shapes:
        input (N, in_chans, H, W) float -> logits (N, num_classes); ``forward_features`` gives
        (N, dims[-1], H/32, W/32).
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (3, 3, 9, 3),
        dims: Sequence[int] = (96, 192, 384, 768),
        mixer: str = "dense",
        kernel_size: int = 7,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        head_init_scale: float = 1.0,
        mixer_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if len(depths) != len(dims):
            raise ValueError(f"depths {tuple(depths)} and dims {tuple(dims)} differ in length")
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0]))]
        )
        for i in range(len(dims) - 1):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2))
            )
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        start = 0
        for dim, depth in zip(dims, depths, strict=True):
            blocks = [
                ConvNeXtBlock(
                    dim,
                    mixer,
                    kernel_size,
                    drop_path=rates[start + j],
                    layer_scale_init_value=layer_scale_init_value,
                    mixer_kwargs=mixer_kwargs,
                )
                for j in range(depth)
            ]
            self.stages.append(nn.Sequential(*blocks))
            start += depth
        self.attach_head(dims[-1], num_classes, head_init_scale)
