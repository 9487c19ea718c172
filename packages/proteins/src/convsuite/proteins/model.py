"""S-GCN, the spherical graph convolutional network for protein model quality assessment, and the
plain message-passing GCN it is compared with.

Igashov, Pavlichenko & Grudinin, "Spherical convolutions on molecular graphs for protein model
quality assessment", Mach. Learn.: Sci. Technol. 2 (2021) 045005; section 2.4 and table 1
(S-GCN(5)): five spherical graph convolutions 23 -> 20 -> 16 -> 8 -> 4 -> 1 with L = 5 (25
spherical harmonics), batch normalization after the 16- and 4-wide layers, ELU, dropout 0.02, a
sigmoid per residue; the model's global score is the mean of its residue scores. 24,633 parameters
(the paper: ~24.6K). Trained with MSE on per-residue scores, Adam (lr 1e-3, L2 3e-3): see
``convsuite.proteins.train``.

The bundled weights are S-GCN_r (the paper's variant with neighbours weighted by contact area,
preset ``sgcn_r``): chosen on the validation decoys, where it reached a per-model residue Pearson
of 0.339 against 0.235 for unweighted S-GCN(5), same data and recipe. Its baseline is the GCN with the same
weighting (preset ``weighted``).

Deviation: the paper's per-residue target is the CAD-score from Voronota; ours is lDDT by default
(biotite), see ``convsuite.proteins.data.lddt``.

The baseline (the paper's control, section 3.3) replaces each spherical convolution by a plain
graph convolution ``act(H W_0 + mean_j H_j W_1 + b)`` whose filters do not see directions; its
widths (100, 72, 32, 8, 1) give 24,509 parameters, equal within 1%.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import Pretrained, register_model
from convsuite.core_ops.layers.spherical import (
    SphericalGraph,
    SphericalGraphConv,
    local_frames,
    spherical_adjacency,
)
from convsuite.proteins.data.batch import GraphBatch
from convsuite.proteins.data.features import NUM_FEATURES

__all__ = [
    "GCNConfig",
    "GCNQualityNet",
    "MeanGraphConv",
    "SGCNConfig",
    "SGCNQualityNet",
    "TensorQualityNet",
]


@dataclass(frozen=True)
class SGCNConfig(ModelConfig):
    """S-GCN(L) architecture (defaults: the paper's S-GCN(5)).

    Args:
        in_features: per-residue inputs (20 one-hot + volume, buriedness, SASA).
        widths: output width of each spherical convolution; the last is 1 (the residue score).
        batch_norm: whether each hidden layer (all but the last) is followed by batch norm.
        order: L, spherical-harmonic order (L**2 filters).
        dropout: after each hidden layer.
        contact_weighting: S-GCN_r, neighbours weighted by contact area.
    """

    in_features: int = NUM_FEATURES
    widths: tuple[int, ...] = (20, 16, 8, 4, 1)
    batch_norm: tuple[bool, ...] = (False, True, False, True)
    order: int = 5
    dropout: float = 0.02
    contact_weighting: bool = False

    def __post_init__(self) -> None:
        if len(self.batch_norm) != len(self.widths) - 1:
            raise ValueError("batch_norm needs one flag per hidden layer (len(widths) - 1)")
        if self.widths[-1] != 1:
            raise ValueError("the last width is the residue score: 1")
        if self.order < 1 or not 0 <= self.dropout < 1:
            raise ValueError("order must be >= 1 and dropout in [0, 1)")


@dataclass(frozen=True)
class GCNConfig(ModelConfig):
    """The plain GCN baseline (same depth, normalization and head; widths for equal size)."""

    in_features: int = NUM_FEATURES
    widths: tuple[int, ...] = (100, 72, 32, 8, 1)
    batch_norm: tuple[bool, ...] = (False, True, False, True)
    dropout: float = 0.02
    contact_weighting: bool = False

    def __post_init__(self) -> None:
        if len(self.batch_norm) != len(self.widths) - 1 or self.widths[-1] != 1:
            raise ValueError("one batch_norm flag per hidden layer; the last width is 1")


class MeanGraphConv(nn.Module):
    """Plain graph convolution ``H W_0 + (D^-1 A H) W_1 + b``: neighbours averaged, no geometry.

    Shapes: ``forward(h, edges, weight)``: h (N, C_in), edges (2, E) (centre, neighbour), weight
    (E,) -> (N, C_out).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.self_linear = nn.Linear(in_channels, out_channels)
        self.neighbour_linear = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, h: torch.Tensor, edges: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        centre, neighbour = edges
        weight = weight.to(h.dtype)
        total = torch.zeros_like(h).index_add_(0, centre, h[neighbour] * weight[:, None])
        degree = torch.zeros(h.shape[0], dtype=h.dtype, device=h.device).index_add_(
            0, centre, weight
        )
        mean = total / degree.clamp_min(1e-6)[:, None]
        return self.self_linear(h) + self.neighbour_linear(mean)


class _QualityNet(nn.Module):
    """Shared stack: conv -> [BN] -> ELU -> dropout per hidden layer, conv -> sigmoid at the end.

    Subclasses give the convolutions and :meth:`support`, what they need of the graph.
    """

    def __init__(self, config: SGCNConfig | GCNConfig, convs: list[nn.Module]) -> None:
        super().__init__()
        self.config = config
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(
            nn.BatchNorm1d(width) if flag else nn.Identity()
            for width, flag in zip(config.widths[:-1], config.batch_norm, strict=True)
        )
        self.act = nn.ELU()
        self.dropout = nn.Dropout(config.dropout)

    def support(self, batch: GraphBatch) -> tuple[torch.Tensor, ...]:
        """The graph as the tensors the convolutions need (see :meth:`scores`)."""
        raise NotImplementedError

    def conv_inputs(self, support: tuple[torch.Tensor, ...]) -> tuple:
        """What each convolution takes besides ``h``, from :meth:`support`'s tensors."""
        return support

    def scores(self, features: torch.Tensor, *support: torch.Tensor) -> torch.Tensor:
        """Per-residue scores (N,) from features (N, C) and :meth:`support`'s tensors."""
        conv_inputs = self.conv_inputs(support)
        h = features
        for conv, norm in zip(self.convs[:-1], self.norms, strict=True):
            h = self.dropout(self.act(norm(conv(h, *conv_inputs))))
        return torch.sigmoid(self.convs[-1](h, *conv_inputs)).squeeze(-1)

    def forward(self, batch: GraphBatch) -> torch.Tensor:
        """Per-residue scores (N,) in [0, 1] (1 = correct) of the residues of ``batch``."""
        return self.scores(batch.features, *self.support(batch))


class TensorQualityNet(nn.Module):
    """A quality network on plain tensors, the form ``torch.export`` captures.

    ``forward(features, *support)`` with ``support = net.support(batch)`` returns ``net(batch)``:
    for S-GCN the padded neighbour lists (N, D) int64 and their weighted harmonics (N, D, L**2)
    (built outside: :func:`~convsuite.core_ops.layers.spherical.spherical_adjacency` sizes D from
    the data, which ``torch.export`` cannot trace), for the GCN the contacts (2, E) and their
    weights (E,), so the GCN exported this way is the whole network.
    """

    def __init__(self, net: _QualityNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, features: torch.Tensor, *support: torch.Tensor) -> torch.Tensor:
        return self.net.scores(features, *support)


@register_model(
    "sgcn",
    presets={
        "paper": SGCNConfig(),
        "sgcn_r": SGCNConfig(contact_weighting=True),
        "tiny": SGCNConfig(widths=(8, 4, 1), batch_norm=(False, True), order=3),
    },
)
class SGCNQualityNet(Pretrained, _QualityNet):
    """S-GCN: per-residue quality from spherical graph convolutions (see the module docstring).

    ``forward(batch)`` takes a :class:`~convsuite.proteins.data.batch.GraphBatch` (features (N, 23),
    backbone (N, 3, 3) Å, contacts) and returns (N,) residue scores; ``batch.global_mean`` of them
    is each model's global score.
    """

    config_class = SGCNConfig
    bundled_package = "convsuite.proteins"
    default_weights = "sgcn_decoys"

    def __init__(self, config: SGCNConfig) -> None:
        widths = (config.in_features, *config.widths)
        convs = [
            SphericalGraphConv(a, b, order=config.order)
            for a, b in zip(widths[:-1], widths[1:], strict=True)
        ]
        super().__init__(config, convs)

    def support(self, batch: GraphBatch) -> tuple[torch.Tensor, ...]:
        """(N, D) neighbour lists and (N, D, L**2) their weighted harmonics (a SphericalGraph)."""
        backbone = batch.backbone
        frames = local_frames(backbone[:, 0], backbone[:, 1], backbone[:, 2])
        weight = batch.edge_weight if self.config.contact_weighting else None
        graph = spherical_adjacency(backbone[:, 1], frames, batch.edges, self.config.order, weight)
        return graph.neighbours, graph.harmonics

    def conv_inputs(self, support: tuple[torch.Tensor, ...]) -> tuple:
        neighbours, harmonics = support
        return (SphericalGraph(neighbours, harmonics, self.config.order),)


@register_model(
    "protein_gcn",
    presets={
        "paper": GCNConfig(),
        "weighted": GCNConfig(contact_weighting=True),
        "tiny": GCNConfig(widths=(16, 8, 1), batch_norm=(False, True)),
    },
)
class GCNQualityNet(Pretrained, _QualityNet):
    """The plain GCN baseline of S-GCN (same interface as :class:`SGCNQualityNet`)."""

    config_class = GCNConfig
    bundled_package = "convsuite.proteins"
    default_weights = "gcn_decoys"

    def __init__(self, config: GCNConfig) -> None:
        widths = (config.in_features, *config.widths)
        convs = [MeanGraphConv(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)]
        super().__init__(config, convs)

    def support(self, batch: GraphBatch) -> tuple[torch.Tensor, ...]:
        """(2, E) contacts and (E,) their weights (contact areas, or ones)."""
        if self.config.contact_weighting:
            return batch.edges, batch.edge_weight
        return batch.edges, torch.ones(batch.edges.shape[1], device=batch.edges.device)
