"""convsuite-medseg: HybridGNet chest x-ray organ contours as graphs; IVD-Net intervertebral discs.

Quickstart::

    from convsuite.medseg import HybridGNet, read_radiograph, segment_image
    net = HybridGNet.from_pretrained("hybridgnet_small")
    result = segment_image(net, read_radiograph("chest.png"), samples=10)
    result.landmarks["H"], result.masks["RL"], result.cardiothoracic_ratio, result.uncertainty

Discs in Dixon MRI::

    from convsuite.medseg import IVDNet, read_subject
    subject = read_subject("data/01")  # 01_{fat,inn,opp,wat}.nii[.gz]
    labels, discs = IVDNet.from_pretrained().segment(subject.image, subject.affine)

The network (:class:`HybridGNet`) maps an image tensor to landmarks; the pipeline
(:func:`segment_image`, :func:`segment`) does the pre- and post-processing around it. Names are
imported on first use, so ``import convsuite.medseg`` costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from convsuite.core_ops.lazy import lazy_exports

if TYPE_CHECKING:
    from convsuite.medseg.data.images import read_radiograph
    from convsuite.medseg.data.ivdm3seg import read_subject
    from convsuite.medseg.data.phantom import PhantomOptions, simulate_phantoms
    from convsuite.medseg.infer import CXRSegmentation, segment, segment_image, segment_pixels
    from convsuite.medseg.ivd_infer import IVDResult, segment_subject
    from convsuite.medseg.models.fusion_baselines import EarlyFusionUNet, LateFusionUNet
    from convsuite.medseg.models.hybridgnet import HybridGNet, HybridGNetConfig
    from convsuite.medseg.models.ivdnet import IVDNet, IVDNetConfig
    from convsuite.medseg.models.pixel_baseline import UNetBaseline, UNetBaselineConfig

_LAZY = {
    "CXRSegmentation": "convsuite.medseg.infer",
    "EarlyFusionUNet": "convsuite.medseg.models.fusion_baselines",
    "IVDNet": "convsuite.medseg.models.ivdnet",
    "IVDNetConfig": "convsuite.medseg.models.ivdnet",
    "IVDResult": "convsuite.medseg.ivd_infer",
    "LateFusionUNet": "convsuite.medseg.models.fusion_baselines",
    "HybridGNet": "convsuite.medseg.models.hybridgnet",
    "HybridGNetConfig": "convsuite.medseg.models.hybridgnet",
    "PhantomOptions": "convsuite.medseg.data.phantom",
    "UNetBaseline": "convsuite.medseg.models.pixel_baseline",
    "UNetBaselineConfig": "convsuite.medseg.models.pixel_baseline",
    "read_radiograph": "convsuite.medseg.data.images",
    "read_subject": "convsuite.medseg.data.ivdm3seg",
    "segment": "convsuite.medseg.infer",
    "segment_image": "convsuite.medseg.infer",
    "segment_pixels": "convsuite.medseg.infer",
    "segment_subject": "convsuite.medseg.ivd_infer",
    "simulate_phantoms": "convsuite.medseg.data.phantom",
}

__all__ = [
    "CXRSegmentation",
    "EarlyFusionUNet",
    "HybridGNet",
    "HybridGNetConfig",
    "IVDNet",
    "IVDNetConfig",
    "IVDResult",
    "LateFusionUNet",
    "PhantomOptions",
    "UNetBaseline",
    "UNetBaselineConfig",
    "read_radiograph",
    "read_subject",
    "segment",
    "segment_image",
    "segment_pixels",
    "segment_subject",
    "simulate_phantoms",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
