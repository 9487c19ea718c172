"""HybridGNet with two image-to-graph skip connections (HybridGNet 2-IGSC, layers 6-5).

Gaggion, Mansilla, Mosquera, Milone & Ferrante, "Improving anatomical plausibility in medical image
segmentation via hybrid graph neural networks: applications to chest x-ray analysis", IEEE TMI 2022.
The best variant of Table II ("2-IGSC 6-5"): a convolutional variational encoder, a Chebyshev graph
decoder onto the organ rings, and two skip connections that sample encoder features at node
positions predicted by the decoder itself (block 6 at the pooled level, block 5 at full level).
Widths, K, window and loss weights follow the authors' code (``HybridGNet_2_IGSC.py``,
``trainerHybrid.py``).

One deliberate deviation: the reference encoder's BatchNorm uses batch statistics also at test time
(``track_running_stats=False``), so a prediction depends on the other images of its batch. We keep
running statistics, so batched and single-image inference agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import Pretrained, register_model
from convsuite.core_ops.layers import ChebConv, NodeResample
from convsuite.medseg.data.landmarks import LUNGS_AND_HEART, ORGAN_SIZES
from convsuite.medseg.models.contour_graph import ContourGraph


@dataclass(frozen=True)
class HybridGNetConfig(ModelConfig):
    """Architecture of HybridGNet; defaults are the paper's (1024 px input, ~17.5M parameters).

    Attributes:
        image_size: side of the square input image in pixels (a multiple of 32).
        encoder_widths: channels of the six residual blocks (five 2x max-pools between them).
        latents: size of the variational latent z.
        graph_widths: decoder widths from the first graph layer to the last hidden one; the
            reference's ``filters = [2, f, f, f, f/2, f/2, f/2]`` read backwards, f = 32.
        k: Chebyshev order K of the decoder's graph convolutions.
        window: side of the encoder-feature window sampled around each predicted node.
        organs: organ rings decoded, in node order.
        kl_weight: weight of the KL term in the loss.
    """

    image_size: int = 1024
    encoder_widths: tuple[int, ...] = (8, 16, 32, 64, 128, 128)
    latents: int = 64
    graph_widths: tuple[int, ...] = (16, 16, 16, 32, 32, 32)
    k: int = 6
    window: int = 3
    organs: tuple[str, ...] = LUNGS_AND_HEART
    kl_weight: float = 1e-5

    def __post_init__(self) -> None:
        if self.image_size % 32:
            raise ValueError(f"image_size must be a multiple of 32, got {self.image_size}")
        if len(self.encoder_widths) != 6 or len(self.graph_widths) != 6:
            raise ValueError("HybridGNet has 6 encoder blocks and 6 decoder graph widths")
        sizes = {"latents": self.latents, "k": self.k, "window": self.window}
        sizes |= {
            "encoder_widths": min(self.encoder_widths),
            "graph_widths": min(self.graph_widths),
        }
        small = [name for name, value in sizes.items() if value < 1]
        if small:
            raise ValueError(f"{', '.join(small)} must be >= 1")
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32, got {self.image_size}")
        if self.window % 2 == 0:
            raise ValueError(f"window must be odd (centred on the node), got {self.window}")
        if self.kl_weight < 0:
            raise ValueError(f"kl_weight must be >= 0, got {self.kl_weight}")
        unknown = [organ for organ in self.organs if organ not in ORGAN_SIZES]
        if unknown or not self.organs:
            raise ValueError(f"organs must be some of {', '.join(ORGAN_SIZES)}, got {self.organs}")


class ResidualBlock(nn.Module):
    """Pre-activation residual block: (BN, ReLU, conv3x3) twice, plus a 1x1 conv + BN shortcut.

    Shapes: (B, C_in, H, W) -> (B, C_out, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class EncoderFeatures(NamedTuple):
    mean: torch.Tensor  # (B, latents)
    log_var: torch.Tensor  # (B, latents)
    block6: torch.Tensor  # (B, C6, S/32, S/32)
    block5: torch.Tensor  # (B, C5, S/16, S/16)


class VariationalEncoder(nn.Module):
    """Six residual blocks with five 2x max-pools, then linear heads for mean and log-variance.

    Shapes: (B, 1, S, S) -> mean, log_var (B, latents), block-6 map (B, C6, S/32, S/32) and block-5
    map (B, C5, S/16, S/16).
    """

    def __init__(self, config: HybridGNetConfig) -> None:
        super().__init__()
        widths = (1, *config.encoder_widths)
        self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in pairwise(widths))
        flat = config.encoder_widths[-1] * (config.image_size // 32) ** 2
        self.to_mean = nn.Linear(flat, config.latents)
        self.to_log_var = nn.Linear(flat, config.latents)

    def forward(self, image: torch.Tensor) -> EncoderFeatures:
        x = image
        for block in self.blocks[:-2]:
            x = F.max_pool2d(block(x), 2)
        block5 = self.blocks[-2](x)
        block6 = self.blocks[-1](F.max_pool2d(block5, 2))
        flat = block6.flatten(1)
        return EncoderFeatures(self.to_mean(flat), self.to_log_var(flat), block6, block5)


def sample_window(feature_map: torch.Tensor, positions: torch.Tensor, window: int) -> torch.Tensor:
    """Mean of a window x window grid of bilinear samples around each position.

    The equivalent of the reference's ``roi_align(aligned=True, output_size=1)`` over a box of
    ``window`` feature-map pixels centred on the node: samples one feature-map pixel apart.

    Args:
        feature_map: (B, C, h, w) encoder features.
        positions: (B, N, 2) node (x, y) in [0, 1] image coordinates (0 and 1 are the outer edges).
        window: odd side of the sampling grid, in feature-map pixels.

    Returns:
        (B, N, C) sampled features.
    """
    height, width = feature_map.shape[-2:]
    offsets = torch.arange(window, dtype=positions.dtype, device=positions.device) - window // 2
    dy, dx = torch.meshgrid(offsets, offsets, indexing="ij")
    size = torch.tensor([width, height], dtype=positions.dtype, device=positions.device)
    pixels = positions[:, :, None, :] * size + torch.stack([dx, dy], -1).reshape(1, 1, -1, 2)
    grid = 2 * pixels / size - 1  # grid_sample's align_corners=False frame
    sampled = F.grid_sample(
        feature_map, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled.mean(dim=-1).transpose(1, 2)


class ImageToGraphSkip(nn.Module):
    """IGSC: predict each node's position (K=1 graph conv), sample the encoder map there, concatenate.

    Shapes: nodes (B, N, C) and feature map (B, F, h, w) -> (B, N, C + F + 2) and positions (B, N, 2).
    """

    def __init__(self, in_channels: int, adjacency: torch.Tensor, window: int) -> None:
        super().__init__()
        self.to_position = ChebConv(in_channels, 2, 1, adjacency, bias=False)
        self.window = window

    def forward(
        self, nodes: torch.Tensor, feature_map: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        positions = self.to_position(nodes)
        sampled = sample_window(feature_map, positions, self.window)
        return torch.cat([nodes, sampled, positions], dim=-1), positions


class HybridGNetOutput(NamedTuple):
    landmarks: torch.Tensor  # (B, N, 2) in [0, 1] image coordinates
    positions_pooled: torch.Tensor  # (B, N_pooled, 2) IGSC 1 (block 6) position prediction
    positions_full: torch.Tensor  # (B, N, 2) IGSC 2 (block 5) position prediction
    mean: torch.Tensor  # (B, latents)
    log_var: torch.Tensor  # (B, latents)


@register_model(
    "hybridgnet",
    presets={
        "paper": HybridGNetConfig(),
        # 256 px: the bundled weights and CPU use; the architecture is unchanged, bottleneck 8x8.
        "small": HybridGNetConfig(image_size=256),
        "tiny": HybridGNetConfig(
            image_size=64,
            encoder_widths=(4, 4, 8, 8, 16, 16),
            graph_widths=(8, 8, 8, 8, 8, 8),
            k=3,
        ),
    },
)
class HybridGNet(Pretrained, nn.Module):
    """HybridGNet 2-IGSC: image (B, 1, S, S) in [0, 1] -> organ landmarks (B, N, 2) in [0, 1].

    Landmark coordinates are (x, y) as fractions of the input side (multiply by S for pixels).
    N = sum of the organs' landmark counts (120 for lungs and heart). In training z is sampled from
    the encoder's posterior; in evaluation z is its mean, or pass ``z`` to ``decode`` to draw samples.

    Build it with ``create_model("hybridgnet", preset="paper" | "small" | "tiny")`` or from a
    config; load weights with ``HybridGNet.from_pretrained("hybridgnet_small" | path)``.

    Args:
        config: architecture (:class:`HybridGNetConfig`).
    """

    config_class = HybridGNetConfig
    bundled_package = "convsuite.medseg"
    default_weights = "hybridgnet_small"

    def __init__(self, config: HybridGNetConfig) -> None:
        super().__init__()
        self.config = config
        self.graph = ContourGraph.for_organs(config.organs)
        full, pooled = self.graph.adjacency, self.graph.pooled_adjacency
        widths, k = config.graph_widths, config.k
        c6, c5 = config.encoder_widths[-1], config.encoder_widths[-2]

        self.encoder = VariationalEncoder(config)
        self.from_latent = nn.Linear(config.latents, widths[0] * self.graph.num_pooled_nodes)
        self.pooled_layers = nn.ModuleList(
            [ChebConv(widths[0], widths[1], k, pooled), ChebConv(widths[1], widths[2], k, pooled)]
        )
        self.skip_block6 = ImageToGraphSkip(widths[2], pooled, config.window)
        self.pooled_after_skip = ChebConv(widths[2] + c6 + 2, widths[3], k, pooled)
        self.unpool = NodeResample(self.graph.upsample)
        self.full_layer = ChebConv(widths[3], widths[4], k, full)
        self.skip_block5 = ImageToGraphSkip(widths[4], full, config.window)
        self.full_after_skip = ChebConv(widths[4] + c5 + 2, widths[5], k, full)
        self.to_coordinates = ChebConv(widths[5], 2, 1, full, bias=False)
        self.register_buffer("downsample", self.graph.downsample.clone())
        self._reset_graph_parameters()

    def _reset_graph_parameters(self) -> None:
        """N(0, 0.1) for the graph convolutions and the latent projection, as the reference."""
        for module in self.modules():
            if isinstance(module, ChebConv):
                nn.init.normal_(module.weight, 0.0, 0.1)
                if module.bias is not None:
                    nn.init.normal_(module.bias, 0.0, 0.1)
        nn.init.normal_(self.from_latent.weight, 0.0, 0.1)

    def decode(self, z: torch.Tensor, block6: torch.Tensor, block5: torch.Tensor) -> tuple:
        """Latent (B, latents) and encoder maps -> (landmarks, IGSC-1 positions, IGSC-2 positions)."""
        x = F.relu(self.from_latent(z)).reshape(z.shape[0], self.graph.num_pooled_nodes, -1)
        for layer in self.pooled_layers:
            x = _norm_relu(layer(x))
        x, positions_pooled = self.skip_block6(x, block6)
        x = _norm_relu(self.pooled_after_skip(x))
        x = _norm_relu(self.full_layer(self.unpool(x)))
        x, positions_full = self.skip_block5(x, block5)
        x = _norm_relu(self.full_after_skip(x))
        return self.to_coordinates(x), positions_pooled, positions_full

    def forward(self, image: torch.Tensor) -> HybridGNetOutput:
        features = self.encoder(image)
        if self.training:
            std = torch.exp(0.5 * features.log_var)
            z = features.mean + std * torch.randn_like(std)
        else:
            z = features.mean
        landmarks, pooled, full = self.decode(z, features.block6, features.block5)
        return HybridGNetOutput(landmarks, pooled, full, features.mean, features.log_var)

    def loss(self, output: HybridGNetOutput, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """The paper's loss: MSE(landmarks) + MSE of both IGSC positions + kl_weight * KL.

        Args:
            output: the forward output.
            target: (B, N, 2) true landmarks in [0, 1] image coordinates.

        Returns:
            "loss" (the total) and its terms "landmarks", "skip", "kl".
        """
        landmarks = F.mse_loss(output.landmarks, target)
        skip = F.mse_loss(output.positions_pooled, torch.matmul(self.downsample, target))
        skip = skip + F.mse_loss(output.positions_full, target)
        kl = -0.5 * torch.mean(1 + output.log_var - output.mean**2 - output.log_var.exp())
        total = landmarks + skip + self.config.kl_weight * kl
        return {"loss": total, "landmarks": landmarks, "skip": skip, "kl": kl}


def _norm_relu(nodes: torch.Tensor) -> torch.Tensor:
    """Normalise each node over its channels, then ReLU.

    The reference applies ``InstanceNorm1d`` (no affine) to (B, N, C) node tensors, which normalises
    each node's feature vector; ``F.instance_norm`` on the same layout does exactly that.
    """
    return F.relu(F.instance_norm(nodes))
