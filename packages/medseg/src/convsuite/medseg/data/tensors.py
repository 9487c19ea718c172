"""Chest x-ray landmark datasets as tensors at the model's input size, for training and evaluation.

Images are preprocessed once (crop, pad to square, resize: :mod:`convsuite.medseg.data.preprocess`)
and held in memory as (N, 1, S, S) float32; landmarks become (N, n_nodes, 2) in [0, 1] of the model
input. At 256 px a thousand radiographs take 256 MB.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rich.progress import track
from torch.utils.data import TensorDataset

from convsuite.medseg.data.landmarks import LUNGS_AND_HEART, ORGAN_SIZES, stack
from convsuite.medseg.data.layout import LandmarkSample, scan_dataset
from convsuite.medseg.data.masks import contour_to_mask
from convsuite.medseg.data.preprocess import SquareFit, fit_to_square


@dataclass
class LandmarkTensors:
    """A landmark dataset at model resolution.

    Attributes:
        stems: sample names.
        images: (N, 1, S, S) float32 in [0, 1].
        landmarks: (N, n_nodes, 2) float32 (x, y) in [0, 1] of the model input.
        fits: per-sample transform back to the original image's pixels.
        samples: the source files.
    """

    stems: list[str]
    images: torch.Tensor
    landmarks: torch.Tensor
    fits: list[SquareFit]
    samples: list[LandmarkSample]

    def __len__(self) -> int:
        return len(self.stems)

    def subset(self, index: Sequence[int]) -> LandmarkTensors:
        index = list(index)
        return LandmarkTensors(
            [self.stems[i] for i in index],
            self.images[index],
            self.landmarks[index],
            [self.fits[i] for i in index],
            [self.samples[i] for i in index],
        )

    def as_dataset(self) -> TensorDataset:
        return TensorDataset(self.images, self.landmarks)

    def organ_masks(self, organs: Sequence[str]) -> torch.Tensor:
        """(N, n_organs, S, S) float32 masks filled from the landmark contours (UNet targets)."""
        size = self.images.shape[-1]
        sizes = _organ_sizes(organs)
        masks = np.zeros((len(self), len(organs), size, size), dtype=np.float32)
        for i, nodes in enumerate(self.landmarks.numpy() * size):
            for j, points in enumerate(np.split(nodes, np.cumsum(sizes)[:-1])):
                masks[i, j] = contour_to_mask(points, (size, size))
        return torch.from_numpy(masks)


def _organ_sizes(organs: Sequence[str]) -> list[int]:
    return [ORGAN_SIZES[organ] for organ in organs]


def load_landmark_tensors(
    root: str | os.PathLike[str],
    size: int,
    organs: Sequence[str] = LUNGS_AND_HEART,
    progress: bool = True,
) -> LandmarkTensors:
    """Read every sample of a landmark-layout dataset and preprocess it to ``size`` pixels."""
    samples = scan_dataset(root, organs)
    images = np.zeros((len(samples), 1, size, size), dtype=np.float32)
    nodes = np.zeros((len(samples), sum(_organ_sizes(organs)), 2), dtype=np.float32)
    fits = []
    for i, sample in enumerate(
        track(samples, description=f"reading {root}", disable=not progress, transient=True)
    ):
        image, landmarks = sample.read()
        images[i, 0], fit = fit_to_square(image, size)
        nodes[i] = fit.to_model(stack(landmarks, organs)) / size
        fits.append(fit)
    return LandmarkTensors(
        [s.stem for s in samples], torch.from_numpy(images), torch.from_numpy(nodes), fits, samples
    )
