"""The Chest-xray-landmark dataset layout: ``images/<stem>.png`` + ``landmarks/<organ>/<stem>.npy``.

Each landmark file is an (N_organ, 2) float array of (x, y) pixel coordinates in its image (1024 px
in the published dataset). Organs: RL, LL, H and optionally RCLA, LCLA. The same layout is what
``medseg cxr simulate`` writes, so simulated and real data go through one reader.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convsuite.core_ops.io import InputError, atomic_path
from convsuite.medseg.data.images import read_radiograph, write_png
from convsuite.medseg.data.landmarks import LUNGS_AND_HEART, Landmarks, validate_landmarks

IMAGE_FOLDER = "images"
LANDMARK_FOLDER = "landmarks"


@dataclass(frozen=True)
class LandmarkSample:
    """One radiograph of a landmark dataset.

    Attributes:
        stem: file stem shared by the image and its landmark files.
        image_path: the PNG.
        landmark_paths: organ -> ``.npy`` path.
    """

    stem: str
    image_path: Path
    landmark_paths: dict[str, Path]

    def read(self) -> tuple[np.ndarray, Landmarks]:
        """(H, W) float32 image in [0, 1] and validated landmarks per organ, in image pixels."""
        image = read_radiograph(self.image_path)
        landmarks = validate_landmarks(
            {organ: _load_points(path) for organ, path in self.landmark_paths.items()},
            str(self.image_path),
        )
        return image, landmarks


def _load_points(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise InputError(path, f"is not a readable .npy landmark array ({error})") from None


def scan_dataset(
    root: str | os.PathLike[str], organs: Sequence[str] = LUNGS_AND_HEART
) -> list[LandmarkSample]:
    """List the samples under ``root`` that have landmarks for every one of ``organs``, by stem.

    Raises:
        InputError: no ``images`` folder, no PNG in it, or an image without all its landmarks.
    """
    root = Path(root)
    image_dir = root / IMAGE_FOLDER
    if not image_dir.is_dir():
        raise InputError(root, f"no '{IMAGE_FOLDER}/' folder: expected the landmark dataset layout")
    samples = []
    pictures = [p for p in image_dir.iterdir() if p.suffix.lower() in (".png", ".dcm")]
    for image_path in sorted(pictures):
        paths = {
            organ: root / LANDMARK_FOLDER / organ / f"{image_path.stem}.npy" for organ in organs
        }
        missing = [organ for organ, path in paths.items() if not path.is_file()]
        if missing:
            raise InputError(image_path, f"has no landmark file for {', '.join(missing)}")
        samples.append(LandmarkSample(image_path.stem, image_path, paths))
    if not samples:
        raise InputError(image_dir, "contains no .png or .dcm images")
    return samples


def write_sample(
    root: str | os.PathLike[str], stem: str, image: np.ndarray, landmarks: Mapping[str, np.ndarray]
) -> LandmarkSample:
    """Write one image and its landmarks in the dataset layout (each file atomically)."""
    root = Path(root)
    image_path = write_png(root / IMAGE_FOLDER / f"{stem}.png", image)
    paths = {}
    for organ, points in landmarks.items():
        path = root / LANDMARK_FOLDER / organ / f"{stem}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, np.asarray(points, dtype=np.float64))
        paths[organ] = path
    return LandmarkSample(stem, image_path, paths)
