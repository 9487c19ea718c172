"""medseg's demo (entry point ``medseg`` of ``convsuite.demos``): HybridGNet vs U-Net under occlusion.

Simulates held-out chest phantoms twice, clean and with random patches over 20% of the lung field
(same anatomy), writes them in the landmark dataset layout, segments both with the bundled
HybridGNet and the bundled U-Net baseline, and reports Dice, Hausdorff distance and topological
validity side by side, as the paper's occlusion study. Figures: overlays of both methods on
occluded phantoms.
"""

from __future__ import annotations

from pathlib import Path

from convsuite.core_ops.demo import DemoResult
from convsuite.core_ops.figures import save_figure
from convsuite.medseg.data.layout import scan_dataset, write_sample
from convsuite.medseg.data.phantom import PhantomOptions, simulate_phantoms
from convsuite.medseg.evaluate import evaluate_dataset
from convsuite.medseg.figures import comparison_figure
from convsuite.medseg.infer import segment, segment_pixels
from convsuite.medseg.models.hybridgnet import HybridGNet
from convsuite.medseg.models.pixel_baseline import UNetBaseline

_SEED = 2026  # held out: the bundled weights were trained on seed 7
_N = 24
_SIZE = 512
_OCCLUSION = 0.2
_SHOWN = 3


def run(out_dir: Path) -> DemoResult:
    """Simulate, segment with both methods, compare clean vs occluded; write figures."""
    out_dir = Path(out_dir)
    net = HybridGNet.from_pretrained("hybridgnet_small")
    baseline = UNetBaseline.from_pretrained("unet_small")
    summary: dict[str, dict[str, float]] = {}
    for condition, occlusion in (("clean", 0.0), ("occluded", _OCCLUSION)):
        root = out_dir / "phantoms" / condition
        options = PhantomOptions(size=_SIZE, occlusion=occlusion)
        for index, phantom in enumerate(simulate_phantoms(_N, _SEED, options)):
            write_sample(root, f"phantom_{index:03d}", phantom.image, phantom.landmarks)
        scores = evaluate_dataset(net, root, baseline, progress=False)
        for method, method_scores in scores.items():
            summary[f"{method} {condition}"] = {
                k: round(v, 4) for k, v in method_scores.summary().items()
            }
    samples = scan_dataset(out_dir / "phantoms" / "occluded", net.config.organs)[:_SHOWN]
    images, truths = zip(*(sample.read() for sample in samples), strict=True)
    figure = comparison_figure(
        images,
        [result.landmarks for result in segment(net, images)],
        segment_pixels(baseline, images),
        truths,
    )
    figure_path = save_figure(figure, out_dir / "occlusion_comparison.png", dpi=110)
    return DemoResult(
        title="HybridGNet chest x-ray contours vs a U-Net, clean and under occlusion",
        summary=summary,
        figures=[figure_path],
        description=(
            f"{_N} held-out simulated radiographs ({_SIZE} px), clean and with random patches over "
            f"{int(_OCCLUSION * 100)}% of the lung field. HybridGNet (bundled small weights) "
            "outputs closed organ contours, so every organ stays one region without holes; the "
            "U-Net's masks can fragment under occlusion. Dice, Hausdorff (mm) and the share of "
            "topologically valid organs per method and condition. Both models were trained on "
            "phantoms only."
        ),
    )
