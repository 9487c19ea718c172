"""convsuite-medseg: HybridGNet chest x-ray organ contours as graphs.

Quickstart::

    from convsuite.medseg import HybridGNet, read_radiograph
    result = HybridGNet.from_pretrained().predict(read_radiograph("chest.png"))
    result.landmarks["H"], result.masks["RL"], result.cardiothoracic_ratio
"""

from convsuite.medseg.data.images import read_radiograph
from convsuite.medseg.data.phantom import PhantomOptions, simulate_phantoms
from convsuite.medseg.infer import CXRSegmentation, segment
from convsuite.medseg.models import HybridGNet, HybridGNetConfig, preset

__all__ = [
    "CXRSegmentation",
    "HybridGNet",
    "HybridGNetConfig",
    "PhantomOptions",
    "preset",
    "read_radiograph",
    "segment",
    "simulate_phantoms",
]
