"""Chest x-ray inference used by the CLI and by notebooks: radiographs in, organ contours out.

Each radiograph is preprocessed as in training (crop, square, resize), segmented in batches, and the
landmarks are mapped back to the input image's pixels. Masks are the filled contours, so each organ
is one closed region by construction. With ``samples > 0`` the latent is sampled from the encoder's
posterior and the spread of each landmark over the samples is its uncertainty.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from convsuite.medseg.data.landmarks import Landmarks, unstack
from convsuite.medseg.data.masks import contour_to_mask
from convsuite.medseg.data.preprocess import SquareFit, fit_to_square
from convsuite.medseg.metrics import cardiothoracic_ratio

if TYPE_CHECKING:
    from convsuite.medseg.models.hybridgnet import EncoderFeatures, HybridGNet
    from convsuite.medseg.models.pixel_baseline import UNetBaseline


@dataclass(frozen=True)
class CXRSegmentation:
    """Organ contours of one radiograph, in its own pixels.

    Attributes:
        landmarks: organ -> (N_organ, 2) float64 (x, y) pixels.
        masks: organ -> (H, W) bool filled contour.
        uncertainty: organ -> (N_organ,) landmark spread in pixels (root of the summed x and y
            variances over latent samples); None without sampling.
        cardiothoracic_ratio: heart width / thorax width (needs RL, LL and H).
    """

    landmarks: Landmarks
    masks: dict[str, np.ndarray]
    uncertainty: dict[str, np.ndarray] | None
    cardiothoracic_ratio: float

    def to_json(self) -> dict:
        out: dict = {
            "landmarks": {o: p.round(3).tolist() for o, p in self.landmarks.items()},
            "cardiothoracic_ratio": round(self.cardiothoracic_ratio, 4),
        }
        if self.uncertainty is not None:
            out["uncertainty_px"] = {o: u.round(3).tolist() for o, u in self.uncertainty.items()}
        return out


def _batches(items: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


@torch.no_grad()
def segment(
    net: HybridGNet,
    images: Iterable[np.ndarray],
    samples: int = 0,
    batch_size: int = 16,
    generator: torch.Generator | None = None,
) -> Iterator[CXRSegmentation]:
    """Segment radiographs with HybridGNet, streaming in batches.

    Args:
        net: a HybridGNet (put in eval mode here).
        images: (H, W) float arrays in [0, 1], any size and aspect.
        samples: latent samples for per-landmark uncertainty (0: none).
        batch_size: images per forward pass.
        generator: seeds the latent samples.

    Yields:
        One :class:`CXRSegmentation` per image, in order.
    """
    net.eval()
    size, organs = net.config.image_size, net.config.organs
    device = next(net.parameters()).device
    for batch in _batches(images, batch_size):
        prepared = [fit_to_square(image, size) for image in batch]
        tensor = torch.from_numpy(np.stack([p[0] for p in prepared])[:, None]).to(device)
        features = net.encoder(tensor)
        nodes = net.decode(features.mean, features.block6, features.block5)[0]
        spread = _latent_spread(net, features, samples, generator) if samples else None
        for i, (image, (_, fit)) in enumerate(zip(batch, prepared, strict=True)):
            yield _to_image(
                nodes[i].cpu().numpy(),
                None if spread is None else spread[i],
                fit,
                image.shape,
                organs,
            )


def segment_image(
    net: HybridGNet,
    image: np.ndarray,
    samples: int = 0,
    generator: torch.Generator | None = None,
) -> CXRSegmentation:
    """Segment one radiograph with HybridGNet; see :func:`segment` for many.

    Args:
        net: a HybridGNet (put in eval mode here).
        image: (H, W) float array in [0, 1], any size and aspect.
        samples: latent samples for per-landmark uncertainty (0: none).
        generator: seeds the latent samples.

    Returns:
        Landmarks per organ in the image's pixels, filled masks, the cardiothoracic ratio and,
        with ``samples`` > 0, each landmark's spread over latent samples.
    """
    return next(segment(net, [image], samples, batch_size=1, generator=generator))


def _latent_spread(
    net: HybridGNet,
    features: EncoderFeatures,
    samples: int,
    generator: torch.Generator | None,
) -> np.ndarray:
    """(B, N) landmark spread in model-input [0, 1] units over ``samples`` posterior draws."""
    std = torch.exp(0.5 * features.log_var)
    draws = []
    for _ in range(samples):
        noise = torch.randn(std.shape, generator=generator).to(std)
        draws.append(net.decode(features.mean + std * noise, features.block6, features.block5)[0])
    stacked = torch.stack(draws)  # (samples, B, N, 2)
    return stacked.var(dim=0, unbiased=samples > 1).sum(-1).sqrt().cpu().numpy()


def _to_image(
    nodes: np.ndarray,
    spread: np.ndarray | None,
    fit: SquareFit,
    shape: tuple[int, int],
    organs: Sequence[str],
) -> CXRSegmentation:
    landmarks = unstack(fit.to_image(nodes * fit.size), organs)
    masks = {organ: contour_to_mask(points, shape) for organ, points in landmarks.items()}
    uncertainty = None
    if spread is not None:
        uncertainty = {
            o: u[:, 0] for o, u in unstack(spread[:, None] * fit.size / fit.scale, organs).items()
        }
    ratio = cardiothoracic_ratio(landmarks) if {"RL", "LL", "H"} <= set(organs) else float("nan")
    return CXRSegmentation(landmarks, masks, uncertainty, ratio)


@torch.no_grad()
def segment_pixels(net: UNetBaseline, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Segment with the U-Net baseline: organ -> (H, W) bool mask in each input image's pixels.

    Args:
        net: the baseline (put in eval mode here); its config gives the input size and organs.
        images: (H, W) float arrays in [0, 1], any size and aspect.
    """
    net.eval()
    organs, size = net.config.organs, net.config.image_size
    device = next(net.parameters()).device
    prepared = [fit_to_square(image, size) for image in images]
    tensor = torch.from_numpy(np.stack([p[0] for p in prepared])[:, None]).to(device)
    probabilities = torch.sigmoid(net(tensor)).cpu()
    return [
        {
            organ: mask
            for organ, mask in zip(organs, _mask_to_image(prob, fit, image.shape), strict=True)
        }
        for prob, (_, fit), image in zip(probabilities, prepared, images, strict=True)
    ]


def _mask_to_image(probability: torch.Tensor, fit: SquareFit, shape: tuple[int, int]) -> np.ndarray:
    """(C, S, S) model-input probabilities -> (C, H, W) bool masks by bilinear lookup at pixel centres."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    model_xy = fit.to_model(np.stack([xs.ravel(), ys.ravel()], axis=1))
    grid = torch.from_numpy(2 * model_xy / fit.size - 1).float().reshape(1, height, width, 2)
    sampled = F.grid_sample(probability[None], grid, align_corners=False, padding_mode="zeros")
    return (sampled[0] > 0.5).numpy()
