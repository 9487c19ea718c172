"""convsuite-medseg: HybridGNet chest x-ray organ contours as graphs.

Quickstart::

    from convsuite.medseg import HybridGNet, read_radiograph, segment_image
    net = HybridGNet.from_pretrained("hybridgnet_small")
    result = segment_image(net, read_radiograph("chest.png"), samples=10)
    result.landmarks["H"], result.masks["RL"], result.cardiothoracic_ratio, result.uncertainty

The network (:class:`HybridGNet`) maps an image tensor to landmarks; the pipeline
(:func:`segment_image`, :func:`segment`) does the pre- and post-processing around it. Names are
imported on first use, so ``import convsuite.medseg`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convsuite.core_ops.lazy import lazy_exports

if TYPE_CHECKING:
    from convsuite.medseg.data.images import read_radiograph
    from convsuite.medseg.data.phantom import PhantomOptions, simulate_phantoms
    from convsuite.medseg.infer import CXRSegmentation, segment, segment_image, segment_pixels
    from convsuite.medseg.models.hybridgnet import HybridGNet, HybridGNetConfig
    from convsuite.medseg.models.pixel_baseline import UNetBaseline, UNetBaselineConfig

_LAZY = {
    "CXRSegmentation": "convsuite.medseg.infer",
    "HybridGNet": "convsuite.medseg.models.hybridgnet",
    "HybridGNetConfig": "convsuite.medseg.models.hybridgnet",
    "PhantomOptions": "convsuite.medseg.data.phantom",
    "UNetBaseline": "convsuite.medseg.models.pixel_baseline",
    "UNetBaselineConfig": "convsuite.medseg.models.pixel_baseline",
    "read_radiograph": "convsuite.medseg.data.images",
    "segment": "convsuite.medseg.infer",
    "segment_image": "convsuite.medseg.infer",
    "segment_pixels": "convsuite.medseg.infer",
    "simulate_phantoms": "convsuite.medseg.data.phantom",
}

__all__ = [
    "CXRSegmentation",
    "HybridGNet",
    "HybridGNetConfig",
    "PhantomOptions",
    "UNetBaseline",
    "UNetBaselineConfig",
    "read_radiograph",
    "segment",
    "segment_image",
    "segment_pixels",
    "simulate_phantoms",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
