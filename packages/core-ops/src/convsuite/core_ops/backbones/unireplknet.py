"""UniRepLKNet (Ding et al., CVPR 2024): large-kernel ConvNet with Dilated Reparam Blocks.

Module and parameter names follow the official implementation (AILab-CVC/UniRepLKNet,
``unireplknet.py``), so its training-form and deploy-form checkpoints load into ours.
:func:`~convsuite.core_ops.layers.reparam.reparameterize_model` turns a trained model into the
deploy form (every Dilated Reparam Block, BatchNorm, layer scale and GRN bias folded into convs and
linears) computing the same function in eval mode.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.layers import DropPath
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from convsuite.core_ops.backbones.norm import LayerNorm2d
from convsuite.core_ops.backbones.registry import register_backbone
from convsuite.core_ops.backbones.staged import StagedClassifier
from convsuite.core_ops.layers.reparam import DilatedReparamConv2d

__all__ = ["GRN", "SEBlock", "UniRepLKNet", "UniRepLKNetBlock", "default_kernel_sizes"]

# Per-block kernel sizes of the official ``default_depths_to_kernel_sizes`` (unireplknet.py), keyed
# by depths: 3x3 depthwise convs in stage 1, 13x13 Dilated Reparam Blocks after; T and S-XL mix 3x3
# blocks into stage 3.
_DEFAULT_KERNEL_SIZES: dict[tuple[int, ...], tuple[tuple[int, ...], ...]] = {
    (2, 2, 6, 2): ((3, 3), (13, 13), (13,) * 6, (13, 13)),
    (2, 2, 8, 2): ((3, 3), (13, 13), (13,) * 8, (13, 13)),
    (3, 3, 18, 3): ((3, 3, 3), (13, 13, 13), (13, 3) * 9, (13, 13, 13)),
    (3, 3, 27, 3): ((3, 3, 3), (13, 13, 13), (13, 3, 3) * 9, (13, 13, 13)),
}


def default_kernel_sizes(depths: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """The official per-block kernel sizes for ``depths`` (A/F/P, N, T, S/B/L/XL).

    Raises:
        ValueError: for depths without an official table (pass ``kernel_sizes`` explicitly).
    """
    try:
        return _DEFAULT_KERNEL_SIZES[tuple(depths)]
    except KeyError:
        raise ValueError(
            f"no default kernel sizes for depths {tuple(depths)}; pass kernel_sizes, e.g. "
            "((3, 3), (13, 13), (13,) * 6, (13, 13))"
        ) from None


class GRN(nn.Module):
    """Global Response Normalization on (N, H, W, C) tensors.

    Woo et al., "ConvNeXt V2", CVPR 2023, Eq. 1-3: ``x * (1 + gamma * N(x)) + beta`` with
    ``N(x) = ||x||_HW / mean_C ||x||_HW``. ``gamma``, ``beta`` start at zero (identity).

    Args:
        dim: C.
        use_bias: whether ``beta`` exists (the deploy form folds it into the next linear).

    Shapes:
        input (N, H, W, C) -> output (N, H, W, C).
    """

    def __init__(self, dim: int, use_bias: bool = True) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        if use_bias:
            self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))
        else:
            self.register_parameter("beta", None)

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        out = (self.gamma * nx + 1) * x
        return out if self.beta is None else out + self.beta


class SEBlock(nn.Module):
    """Squeeze-and-Excitation: ``x * sigmoid(up(relu(down(avgpool(x)))))``.

    Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, Fig. 1; 1x1 convs with bias as in
    UniRepLKNet (reduction 4).

    Args:
        channels: C.
        internal: hidden width (C // 4 in UniRepLKNet).

    Shapes:
        input (N, C, H, W) -> output (N, C, H, W).
    """

    def __init__(self, channels: int, internal: int) -> None:
        super().__init__()
        self.down = nn.Conv2d(channels, internal, 1)
        self.up = nn.Conv2d(internal, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.up(F.relu(self.down(F.adaptive_avg_pool2d(x, 1))))
        return x * torch.sigmoid(scale)


class _ToChannelsLastView(nn.Module):
    """(N, C, H, W) -> (N, H, W, C) view (a free permute for channels_last memory)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 2, 3, 1)


class _ToChannelsFirstView(nn.Module):
    """(N, H, W, C) -> (N, C, H, W) view."""

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(0, 3, 1, 2)


def _fold_bn_into_linear_out(
    weight: Tensor, bias: Tensor, bn: nn.BatchNorm2d, scale: Tensor | float
) -> tuple[Tensor, Tensor]:
    """Weight and bias of ``scale * bn(W x + b)`` (BN over the linear's outputs, eval mode)."""
    factor = bn.weight / torch.sqrt(bn.running_var + bn.eps) * scale
    return weight * factor[:, None], (bias - bn.running_mean) * factor + bn.bias * scale


class UniRepLKNetBlock(nn.Module):
    """UniRepLKNet block: depthwise conv -> BN -> SE -> Linear 4C -> GELU -> GRN -> Linear -> BN.

    Ding, Zhang, Ge, Zhao, Song, Yue, Shan, "UniRepLKNet: A Universal Perception Large-Kernel
    ConvNet for Audio, Video, Point Cloud, Time-Series and Image Recognition", CVPR 2024, Fig. 3
    (LarK/SmaK blocks) and the official ``UniRepLKNetBlock``: kernel size >= 7 uses a
    :class:`~convsuite.core_ops.layers.reparam.DilatedReparamConv2d` (LarK), 3 or 5 a plain
    depthwise conv (SmaK), 0 none; residual with layer scale and drop path.

    :meth:`reparameterize` produces the deploy form (``deploy=True``): the depthwise branch and its
    BN become one conv with bias, the GRN bias, the last BN and the layer scale fold into the last
    linear. Equal outputs in eval mode.

    Args:
        dim: C, channels in and out.
        kernel_size: 0, 3, 5 or an odd size >= 7.
        drop_path: stochastic depth probability.
        layer_scale_init_value: initial layer scale; 0 or None disables it.
        deploy: build the inference form directly.
        ffn_factor: hidden width of the FFN as a multiple of C.

    Shapes:
        input (N, C, H, W) -> output (N, C, H, W).
    """

    def __init__(
        self,
        dim: int,
        kernel_size: int,
        drop_path: float = 0.0,
        layer_scale_init_value: float | None = 1e-6,
        deploy: bool = False,
        ffn_factor: int = 4,
    ) -> None:
        super().__init__()
        if kernel_size == 0:
            self.dwconv: nn.Module = nn.Identity()
        elif kernel_size >= 7:
            self.dwconv = DilatedReparamConv2d(dim, kernel_size, deploy=deploy)
        elif kernel_size in (3, 5):
            self.dwconv = nn.Conv2d(
                dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=deploy
            )
        else:
            raise ValueError(f"kernel_size must be 0, 3, 5 or odd >= 7, got {kernel_size}")
        self.norm: nn.Module = nn.Identity() if deploy or kernel_size == 0 else nn.BatchNorm2d(dim)
        self.se = SEBlock(dim, dim // 4)
        hidden = int(ffn_factor * dim)
        self.pwconv1 = nn.Sequential(_ToChannelsLastView(), nn.Linear(dim, hidden))
        self.act = nn.Sequential(nn.GELU(), GRN(hidden, use_bias=not deploy))
        if deploy:
            self.pwconv2 = nn.Sequential(nn.Linear(hidden, dim), _ToChannelsFirstView())
        else:
            self.pwconv2 = nn.Sequential(
                nn.Linear(hidden, dim, bias=False), _ToChannelsFirstView(), nn.BatchNorm2d(dim)
            )
        if not deploy and layer_scale_init_value:
            self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale_init_value)))
        else:
            self.register_parameter("gamma", None)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.se(self.norm(self.dwconv(x)))
        y = self.pwconv2(self.act(self.pwconv1(y)))
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + self.drop_path(y)

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fold everything foldable into the deploy form, in place (uses BN running statistics)."""
        if isinstance(self.dwconv, DilatedReparamConv2d):
            self.dwconv.reparameterize()
        if isinstance(self.norm, nn.BatchNorm2d):
            conv = (
                self.dwconv.lk_origin
                if isinstance(self.dwconv, DilatedReparamConv2d)
                else self.dwconv
            )
            weight, bias = fuse_conv_bn_weights(
                conv.weight,
                conv.bias,
                self.norm.running_mean,
                self.norm.running_var,
                self.norm.eps,
                self.norm.weight,
                self.norm.bias,
            )
            fused = nn.Conv2d(
                conv.in_channels,
                conv.out_channels,
                conv.kernel_size,
                padding=conv.padding,
                groups=conv.groups,
                bias=True,
                device=weight.device,
                dtype=weight.dtype,
            )
            fused.weight.copy_(weight)
            fused.bias.copy_(bias)
            if isinstance(self.dwconv, DilatedReparamConv2d):
                self.dwconv.lk_origin = fused
            else:
                self.dwconv = fused
            self.norm = nn.Identity()
        if len(self.pwconv2) == 3:
            linear, _, bn = self.pwconv2
            grn = self.act[1]
            bias = linear.weight.new_zeros(linear.out_features)
            if grn.beta is not None:
                bias = bias + linear.weight @ grn.beta.flatten()
                grn.beta = None
            scale = self.gamma if self.gamma is not None else 1.0
            weight, bias = _fold_bn_into_linear_out(linear.weight, bias, bn, scale)
            fused_linear = nn.Linear(
                linear.in_features, linear.out_features, device=weight.device, dtype=weight.dtype
            )
            fused_linear.weight.copy_(weight)
            fused_linear.bias.copy_(bias)
            self.pwconv2 = nn.Sequential(fused_linear, _ToChannelsFirstView())
            self.gamma = None


@register_backbone(
    "unireplknet_test",
    depths=(1, 1, 1, 1),
    dims=(16, 32, 64, 128),
    kernel_sizes=((3,), (13,), (13,), (7,)),
)
@register_backbone("unireplknet_a", depths=(2, 2, 6, 2), dims=(40, 80, 160, 320))
@register_backbone("unireplknet_f", depths=(2, 2, 6, 2), dims=(48, 96, 192, 384))
@register_backbone("unireplknet_p", depths=(2, 2, 6, 2), dims=(64, 128, 256, 512))
@register_backbone("unireplknet_n", depths=(2, 2, 8, 2), dims=(80, 160, 320, 640))
class UniRepLKNet(StagedClassifier):
    """UniRepLKNet image classifier (the ImageNet "logits" form of the official model).

    Ding et al., CVPR 2024, Sec. 4 and Table 2 (the A/F/P/N/T/S/B/L/XL family): stem of two 3x3
    stride-2 convs (C/2 then C channels, LayerNorm after each, GELU between), 3x3 stride-2 conv +
    LayerNorm downsampling, four stages of :class:`UniRepLKNetBlock` (3x3 SmaK blocks in stage 1,
    13x13 LarK blocks after, :func:`default_kernel_sizes`), global average pool, LayerNorm, linear
    head. Truncated-normal (std 0.02) init, zero biases. The trunk runs channels_last in memory.

    Presets: ``unireplknet_a`` (dims 40..320, depths 2, 2, 6, 2; 4.4M params in the paper),
    ``unireplknet_f`` (48..384, 6.2M), ``unireplknet_p`` (64..512, 10.7M), ``unireplknet_n``
    (80..640, depths 2, 2, 8, 2; 18.3M), and the tiny ``unireplknet_test``.

    Args:
        in_chans: input channels.
        num_classes: classes of the head; 0 for no head.
        depths: blocks per stage.
        dims: channels per stage.
        kernel_sizes: kernel size of every block, per stage; default :func:`default_kernel_sizes`.
        drop_path_rate: stochastic depth, rising linearly from 0 over all blocks.
        layer_scale_init_value: initial layer scale (1e-6).
        head_init_scale: factor on the initial head weights and bias.
        deploy: build the inference form directly (to load re-parameterized weights).

    Shapes:
        input (N, in_chans, H, W) -> logits (N, num_classes); ``forward_features`` gives
        (N, dims[-1], H/32, W/32).
    """

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        depths: Sequence[int] = (2, 2, 6, 2),
        dims: Sequence[int] = (40, 80, 160, 320),
        kernel_sizes: Sequence[Sequence[int]] | None = None,
        drop_path_rate: float = 0.0,
        layer_scale_init_value: float = 1e-6,
        head_init_scale: float = 1.0,
        deploy: bool = False,
    ) -> None:
        super().__init__()
        if len(depths) != 4 or len(dims) != 4:
            raise ValueError(f"UniRepLKNet has 4 stages, got depths {depths} and dims {dims}")
        kernel_sizes = default_kernel_sizes(depths) if kernel_sizes is None else kernel_sizes
        for depth, sizes in zip(depths, kernel_sizes, strict=True):
            if len(sizes) != depth:
                raise ValueError(f"kernel_sizes {kernel_sizes} do not match depths {depths}")
        self.num_classes = num_classes
        self.num_features = dims[-1]
        self.downsample_layers = nn.ModuleList(
            [
                nn.Sequential(
                    nn.Conv2d(in_chans, dims[0] // 2, 3, stride=2, padding=1),
                    LayerNorm2d(dims[0] // 2),
                    nn.GELU(),
                    nn.Conv2d(dims[0] // 2, dims[0], 3, stride=2, padding=1),
                    LayerNorm2d(dims[0]),
                )
            ]
        )
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(
                    nn.Conv2d(dims[i], dims[i + 1], 3, stride=2, padding=1),
                    LayerNorm2d(dims[i + 1]),
                )
            )
        rates = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        start = 0
        for dim, depth, sizes in zip(dims, depths, kernel_sizes, strict=True):
            blocks = [
                UniRepLKNetBlock(
                    dim,
                    sizes[j],
                    drop_path=rates[start + j],
                    layer_scale_init_value=layer_scale_init_value,
                    deploy=deploy,
                )
                for j in range(depth)
            ]
            self.stages.append(nn.Sequential(*blocks))
            start += depth
        self.attach_head(dims[-1], num_classes, head_init_scale)
