"""Paths of the checkpoints shipped in the wheel (``weights/``), each with its JSON model card."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

HYBRIDGNET_SMALL = "hybridgnet_small.safetensors"
UNET_SMALL = "unet_small.safetensors"


def bundled_weights(name: str = HYBRIDGNET_SMALL) -> Path:
    """Path of a bundled checkpoint; both were trained on simulated phantoms (see their cards)."""
    return Path(str(resources.files("convsuite.medseg") / "weights" / name))
