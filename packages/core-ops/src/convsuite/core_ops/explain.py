"""Grad-CAM maps for classifiers and segmenters, wrapping MONAI's implementation.

Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
ICCV 2017. MONAI's ``monai.visualize.GradCAM`` does the work; this module only adapts the target
(a class index, or a class plus a mask for segmenters) and the layer (a module or a dotted name).
"""

from __future__ import annotations

import torch
from monai.visualize import GradCAM
from torch import Tensor, nn

__all__ = ["grad_cam"]


class _MaskedClassScore(nn.Module):
    """Wraps a segmenter: (N, K, *spatial) logits -> (N, 1) sum of class ``k`` inside ``mask``."""

    def __init__(self, model: nn.Module, target_class: int, mask: Tensor) -> None:
        super().__init__()
        self.model = model
        self.target_class = target_class
        self.register_buffer("mask", mask.float())

    def forward(self, x: Tensor) -> Tensor:
        logits = self.model(x)[:, self.target_class]
        mask = self.mask.expand_as(logits)
        return (logits * mask).flatten(1).sum(1, keepdim=True)


def _unit_range(maps: Tensor) -> Tensor:
    """Per-sample min-max scaling to [0, 1], 1 = most important; a constant map becomes 0.

    MONAI's default post-processing maps (min, max) to (1, 0), which flips the heat map.
    """
    flat = maps.flatten(1)
    low = flat.min(1).values.view(-1, *([1] * (maps.dim() - 1)))
    span = (flat.max(1).values.view_as(low) - low).clamp_min(1e-12)
    return (maps - low) / span


def _layer_name(model: nn.Module, target_layer: nn.Module | str) -> str:
    if isinstance(target_layer, str):
        dict(model.named_modules())[target_layer]  # KeyError names the missing layer
        return target_layer
    for name, module in model.named_modules():
        if module is target_layer:
            return name
    raise ValueError("target_layer is not a submodule of model")


def grad_cam(
    model: nn.Module,
    x: Tensor,
    target_layer: nn.Module | str,
    target: int | Tensor | tuple[int, Tensor],
) -> Tensor:
    """Grad-CAM heat maps of ``model`` at ``target_layer``.

    Args:
        model: a classifier ((N, C, *spatial) -> (N, K) logits) or a segmenter (-> (N, K, *spatial)).
        x: (N, C, *spatial) input.
        target_layer: the layer whose activations are weighted (a module of ``model`` or its name).
        target: for classifiers a class index, or (N,) class indices; for segmenters a tuple
            ``(class_index, mask)`` with mask (N or 1, *spatial), scoring the class inside the mask.

    Returns:
        (N, 1, *spatial) maps in [0, 1], upsampled to the input size.
    """
    if isinstance(target, tuple):
        target_class, mask = target
        wrapped: nn.Module = _MaskedClassScore(model, target_class, mask)
        name = "model." + _layer_name(model, target_layer)
        class_index: int | Tensor = 0
    else:
        wrapped = model
        name = _layer_name(model, target_layer)
        class_index = target
    cam = GradCAM(nn_module=wrapped, target_layers=name, postprocessing=_unit_range)
    with torch.enable_grad():
        if isinstance(class_index, Tensor):
            maps = torch.cat(
                [cam(x[i : i + 1], class_idx=int(c)) for i, c in enumerate(class_index)]
            )
        else:
            maps = cam(x, class_idx=class_index)
    return maps.detach()
