"""Backbones built from core-ops layers, by name: ``create_backbone("convnext_atto", mixer="dcls")``.

Importing this package registers every preset (:func:`list_backbones`).
"""

from convsuite.core_ops.backbones.convnext import ConvNeXt, ConvNeXtBlock
from convsuite.core_ops.backbones.registry import (
    backbone_config,
    create_backbone,
    list_backbones,
    register_backbone,
)
from convsuite.core_ops.backbones.unet import UNet
from convsuite.core_ops.backbones.unireplknet import UniRepLKNet, UniRepLKNetBlock

__all__ = [
    "ConvNeXt",
    "ConvNeXtBlock",
    "UNet",
    "UniRepLKNet",
    "UniRepLKNetBlock",
    "backbone_config",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]
