"""SkyReconNet on the HEALPix sphere: dilated (context) and standard (detail) convolutions merged
at every resolution of a U-Net over the 12 base faces.

A re-implementation after "SkyReconNet: A Cross-Resolution Contextual Integration Framework for
Inpainting with Application to Enhanced CMB Map Reconstruction" (arXiv:2501.06139). The paper
gives no code and no layer table. From the paper: a network that combines dilated convolutions
(wide context) with standard convolutions (local detail), merged across resolutions, trained with
``alpha (1 - SSIM) + (1 - alpha) MSE``, the mask as an input, judged by the angular power spectrum.

Ours:

* The sphere, not a flat projection: maps are stacks of the 12 HEALPix NESTED base faces
  (B * 12, C, nside, nside) and every convolution pads each face from its true neighbours
  (:class:`convsuite.core_ops.layers.HEALPixConv2d`): no seams, no projection distortion. In
  NESTED order the 4 children of a pixel are a 2 x 2 block of its face, so 2 x 2 average pooling
  is exactly ``healpy.ud_grade`` down and nearest 2 x upsampling exactly ``ud_grade`` up.
* :class:`ContextBlock`, the "cross-resolution contextual integration" at one resolution: a
  standard 3 x 3 branch and dilated 3 x 3 branches (dilations 2 and 4, capped by the face size)
  in parallel, concatenated (core-ops' :class:`~convsuite.core_ops.layers.MultiDilatedConv2d`
  with HEALPix convolutions as its branches), merged by a 1 x 1 convolution, added to the input
  (residual), with BatchNorm and GELU.
* A U-Net over resolutions nside, nside / 2, ..., ``bottom_nside`` (default 8, a 7.3 deg pixel:
  with dilation 4 the bottom sees ~60 deg, wider than the galactic cut), one ContextBlock pair
  per level on the way down and one on the way up, skip connections by concatenation.
  Widths are given from the bottom up, so a network for Nside 256 holds the Nside 128 network's
  levels plus one (weights can be carried over by level).
* Inputs: the map with holes set to 0, the mask, and (ours) the map with its holes filled by
  diffusive inpainting (:func:`convsuite.cosmo.infer.prefill`, computed by the pipeline or the
  training data, outside the network: it runs on numpy), maps divided by
  ``scale_uk`` (100 muK). The network predicts a correction to that smooth fill, so from its
  first steps it starts at the diffusive baseline's quality and training spends its (CPU) budget
  on what diffusion cannot do (the output convolutions start at zero: an untrained network, or a
  level added on top of a trained one, returns the diffusive fill exactly). Output: the full
  map; observed pixels are passed through unchanged (only holes are predicted).
* Around the network (ours, :mod:`convsuite.cosmo.infer`): the hole pixels within 3 steps of the
  data are filled first by a local Wiener filter (:mod:`convsuite.cosmo.local_wiener`) and given
  to the network as data; the network fills the rest. The paper's claim of power-spectrum
  fidelity did not hold here without it (a fill started from diffusion leaves kinks at hole
  edges).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import Pretrained, register_model
from convsuite.core_ops.layers import (
    HEALPixConv2d,
    MultiDilatedConv2d,
    faces_from_nest,
    nest_from_faces,
)

__all__ = ["ContextBlock", "SkyReconConfig", "SkyReconNet"]


@dataclass(frozen=True)
class SkyReconConfig(ModelConfig):
    """Architecture of :class:`SkyReconNet`.

    Attributes:
        widths: channels per level from the bottom (``bottom_nside``) up; a map of Nside ``n``
            uses the first ``log2(n / bottom_nside) + 1`` entries (enough entries are required).
        bottom_nside: the coarsest level's Nside.
        dilations: the context branches' dilations (each capped at a quarter of the face side).
        scale_uk: input/output scale in muK (maps are divided by it).
        adaptive_scale: divide each map by the RMS of its observed pixels instead (at least
            ``scale_uk / 1000``): the network sees every sky in units of its own amplitude, the
            conditioning that lets one network serve skies of any amplitude and any unit (issue
            13); False for checkpoints trained before it.
    """

    widths: tuple[int, ...] = (64, 48, 32, 24, 16, 12)
    bottom_nside: int = 8
    dilations: tuple[int, ...] = (2, 4)
    scale_uk: float = 100.0
    adaptive_scale: bool = False

    def __post_init__(self) -> None:
        for name in ("widths", "dilations"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.widths or min(self.widths) < 1:
            raise ValueError(f"widths must be positive, got {self.widths}")
        if self.bottom_nside < 1 or self.bottom_nside & (self.bottom_nside - 1):
            raise ValueError(f"bottom_nside must be a power of two, got {self.bottom_nside}")

    @property
    def max_nside(self) -> int:
        """The largest Nside the widths cover."""
        return self.bottom_nside * 2 ** (len(self.widths) - 1)

    def levels(self, nside: int) -> int:
        """Resolution levels used for a map of ``nside`` (1 = the bottom level only)."""
        if nside < self.bottom_nside or nside & (nside - 1):
            raise ValueError(
                f"Nside {nside} must be a power of two >= bottom_nside {self.bottom_nside}"
            )
        levels = int(math.log2(nside // self.bottom_nside)) + 1
        if levels > len(self.widths):
            raise ValueError(f"Nside {nside} needs {levels} widths, the config has {self.widths}")
        return levels


class ContextBlock(nn.Module):
    """Standard and dilated 3 x 3 HEALPix convolutions in parallel, merged, residual.

    The branches are one :class:`~convsuite.core_ops.layers.MultiDilatedConv2d` (dilations 1 and
    ``dilations``, every branch on the whole input, outputs concatenated) built with
    :class:`~convsuite.core_ops.layers.HEALPixConv2d` as its convolution, so each branch is padded
    from the neighbouring faces. Their weights are ``branches.convs.<g>.weight``; checkpoints
    written before (the bundled ones) name them ``local.weight`` (g = 0) and
    ``context.<g - 1>.weight``, and are renamed on load (:func:`_renamed_branch_keys`).

    Args:
        channels: C in and out.
        dilations: dilations of the context branches (each at most the Nside it will see).

    Shapes:
        (B * 12, C, n, n) -> (B * 12, C, n, n).
    """

    def __init__(self, channels: int, dilations: Sequence[int]) -> None:
        super().__init__()
        self.branches = MultiDilatedConv2d(
            channels,
            channels,
            3,
            dilations=(1, *dilations),
            bias=False,
            conv_factory=HEALPixConv2d,
            shared_input=True,
            merge="concat",
        )
        merged = self.branches.out_channels
        self.norm = nn.BatchNorm2d(merged)
        self.merge = nn.Conv2d(merged, channels, 1)
        self.register_load_state_dict_pre_hook(_renamed_branch_keys)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.merge(F.gelu(self.norm(self.branches(x))))


def _renamed_branch_keys(
    module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *_: object
) -> None:
    """Load-time pre-hook of :class:`ContextBlock`: the branch weights of the layout before
    ``MultiDilatedConv2d`` (``local.weight``, ``context.<i>.weight``) under their current names
    (``branches.convs.0.weight``, ``branches.convs.<i + 1>.weight``), in place."""
    old = prefix + "local.weight"
    if old in state_dict:
        state_dict[prefix + "branches.convs.0.weight"] = state_dict.pop(old)
    context = prefix + "context."
    for key in [k for k in state_dict if k.startswith(context)]:
        index, rest = key.removeprefix(context).split(".", 1)
        state_dict[f"{prefix}branches.convs.{int(index) + 1}.{rest}"] = state_dict.pop(key)


@register_model(
    "skyrecon",
    presets={
        # The bundled weights, Nside up to 256 (levels 8..256). The paper gives no layer table.
        "small": SkyReconConfig(adaptive_scale=True),
        # Tests: Nside up to 32 on 3 levels (8, 16, 32).
        "tiny": SkyReconConfig(
            widths=(16, 12, 8), bottom_nside=8, dilations=(2,), adaptive_scale=True
        ),
    },
)
class SkyReconNet(Pretrained, nn.Module):
    """The inpainting network (see the module docstring).

    Bundled weights (``list_bundled("convsuite.cosmo")``): ``skyrecon_nside64``,
    ``skyrecon_nside128`` and ``skyrecon_nside256``, each trained at the Nside its card gives as
    ``inputs["nside"]``; ``SkyReconNet.from_pretrained(name_or_path)`` loads one of them or a
    checkpoint from ``cosmo-train``.

    Args:
        config: the architecture (a preset: ``model_config("skyrecon", "small")``).

    A pure torch module: :meth:`forward` takes the diffusive pre-fill as an input, so it runs on
    any device and exports with ``torch.export``.

    Shapes:
        :meth:`forward`: ``masked``, ``observed``, ``fill`` (B, 12 nside^2) -> (B, 12 nside^2)
        muK NESTED. :meth:`forward_faces`: (B * 12, 3, n, n) scaled inputs -> (B * 12, 1, n, n).
        Level ``l`` (Nside ``bottom_nside * 2^l``) has its own input and output 1 x 1
        convolutions (``entry[l]``, ``exit[l]``), used when it is the top level of a map.
    """

    config_class = SkyReconConfig
    bundled_package = "convsuite.cosmo"
    default_weights = "skyrecon_nside64"

    def __init__(self, config: SkyReconConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths  # bottom up
        nsides = [config.bottom_nside * 2**level for level in range(len(widths))]

        def block(level: int) -> ContextBlock:
            usable = [d for d in config.dilations if d <= nsides[level]]
            return ContextBlock(widths[level], usable)

        self.entry = nn.ModuleList(nn.Conv2d(3, w, 1) for w in widths)
        self.exit = nn.ModuleList(nn.Conv2d(w, 1, 1) for w in widths)
        for conv in self.exit:  # a new network (or a new top level) starts at the fill itself
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.down = nn.ModuleList(block(level) for level in range(len(widths)))
        self.narrow = nn.ModuleList(
            nn.Conv2d(widths[level + 1], widths[level], 1) for level in range(len(widths) - 1)
        )
        self.fuse = nn.ModuleList(
            nn.Conv2d(widths[level] + widths[level - 1], widths[level], 1)
            for level in range(1, len(widths))
        )
        self.up = nn.ModuleList(block(level) for level in range(len(widths)))

    def forward_faces(self, x: Tensor) -> Tensor:
        """(B * 12, 3, n, n) [map, mask, diffusive fill] -> (B * 12, 1, n, n) correction of the fill."""
        top = self.config.levels(x.shape[-1]) - 1
        skips = []
        # channels-last: oneDNN's convolutions at these few channels run 1.7x faster that way
        # (Nside 512 forward on the CPU: 2.9 s vs 4.9 s); the values are the same
        h = self.entry[top](x.contiguous(memory_format=torch.channels_last))
        for level in range(top, -1, -1):
            if level < top:
                h = self.narrow[level](F.avg_pool2d(h, 2))
            h = self.down[level](h)
            skips.append(h)
        h = self.up[0](skips.pop())
        for level in range(1, top + 1):
            h = F.interpolate(h, scale_factor=2, mode="nearest")
            h = self.up[level](self.fuse[level - 1](torch.cat([skips.pop(), h], 1)))
        return self.exit[top](h)

    def scale(self, masked: Tensor, observed: Tensor) -> Tensor:
        """(B, 1) muK the maps are divided by: ``scale_uk``, or with ``adaptive_scale`` the RMS of
        each map's observed pixels (mean removed; at least ``scale_uk / 1000``)."""
        fixed = torch.full_like(masked[:, :1], self.config.scale_uk)
        if not self.config.adaptive_scale:
            return fixed
        count = observed.sum(1, keepdim=True).clamp_min(1)
        mean = (masked * observed).sum(1, keepdim=True) / count
        variance = (((masked - mean) * observed) ** 2).sum(1, keepdim=True) / count
        return variance.sqrt().clamp_min(self.config.scale_uk / 1000)

    def forward(self, masked: Tensor, observed: Tensor, fill: Tensor) -> Tensor:
        """Fill the holes of NESTED maps.

        Args:
            masked: (B, 12 nside^2) muK NESTED; hole values are ignored (NaN too).
            observed: (B, 12 nside^2) bool or {0, 1}, NESTED.
            fill: (B, 12 nside^2) muK NESTED, the holes pre-filled by diffusive inpainting
                (:func:`convsuite.cosmo.infer.prefill`): the network predicts its correction.

        Returns:
            (B, 12 nside^2) muK NESTED, dtype of ``masked``: ``masked`` at observed pixels.
        """
        observed = observed.to(masked.dtype)
        masked = torch.nan_to_num(masked) * observed
        fill = fill.to(masked.dtype)
        scale = self.scale(masked, observed)
        faces = faces_from_nest(torch.stack([masked / scale, observed, fill / scale], 1))
        n = faces.shape[-1]
        stack = faces.transpose(1, 2).reshape(-1, 3, n, n)  # (B * 12, 3, n, n)
        correction = nest_from_faces(self.forward_faces(stack).reshape(-1, 12, n, n))
        return torch.where(observed > 0, masked, fill + correction * scale)
