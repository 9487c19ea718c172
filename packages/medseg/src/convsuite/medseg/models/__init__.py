"""Networks of convsuite-medseg."""

from convsuite.medseg.models.contour_graph import ContourGraph
from convsuite.medseg.models.hybridgnet import (
    PRESETS,
    HybridGNet,
    HybridGNetConfig,
    HybridGNetOutput,
    preset,
)

__all__ = [
    "PRESETS",
    "ContourGraph",
    "HybridGNet",
    "HybridGNetConfig",
    "HybridGNetOutput",
    "preset",
]
