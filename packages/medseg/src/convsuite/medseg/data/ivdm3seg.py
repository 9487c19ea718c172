"""The IVDM3Seg layout (MICCAI 2018 intervertebral disc challenge) and IVD-Net's PNG slice folders.

A subject is a folder ``<root>/<NN>/`` holding four Dixon volumes ``<NN>_fat.nii``, ``<NN>_inn.nii``
(in-phase), ``<NN>_opp.nii`` (opposed-phase), ``<NN>_wat.nii`` (``.nii`` or ``.nii.gz``) and, for
training data, ``<NN>_Labels.nii`` (1 = disc). The challenge's volumes are 36 x 256 x 256 voxels of
2.0 x 1.25 x 1.25 mm, sagittal slices first; any axis order or flip works here, since the reader
follows the affine (:func:`to_canonical` brings a volume to RAS, :func:`from_canonical` back).

IVD-Net's reference code trains on 2-D slices exported as 16-bit PNGs:
``<root>/{Fat,Inn,Opp,Wat,GT}/<name>.png`` with the same file names in every folder
(:func:`read_png_slices`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import atomic_path

__all__ = [
    "MODALITIES",
    "PNG_FOLDERS",
    "Subject",
    "find_subjects",
    "from_canonical",
    "normalize",
    "read_png_slices",
    "read_subject",
    "subject_files",
    "to_canonical",
    "write_png_slices",
    "write_subject",
]

MODALITIES: tuple[str, ...] = ("fat", "inn", "opp", "wat")
"""Dixon images in channel order: fat, in-phase, opposed-phase, water."""
PNG_FOLDERS: tuple[str, ...] = ("Fat", "Inn", "Opp", "Wat")
_LABELS = "Labels"
_SUFFIXES = (".nii", ".nii.gz")
_AFFINE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class Subject:
    """One subject as stored on disk.

    Attributes:
        name: the folder's name.
        image: (4, X, Y, Z) float32 Dixon volumes in :data:`MODALITIES` order, file orientation.
        affine: (4, 4) voxel -> world (mm) of every volume.
        labels: (X, Y, Z) uint8 (1 = disc), or None when the folder has no labels.
    """

    name: str
    image: np.ndarray
    affine: np.ndarray
    labels: np.ndarray | None

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along the stored axes, mm."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))


def _find(folder: Path, key: str) -> Path | None:
    """``<any prefix>_<key>.nii[.gz]`` in ``folder`` (the subject's own prefix first)."""
    for suffix in _SUFFIXES:
        own = folder / f"{folder.name}_{key}{suffix}"
        if own.is_file():
            return own
    pattern = re.compile(rf".*_{re.escape(key)}\.nii(\.gz)?$", re.IGNORECASE)
    matches = sorted(p for p in folder.iterdir() if pattern.match(p.name) and p.is_file())
    if len(matches) > 1:
        names = ", ".join(p.name for p in matches)
        raise InputError(folder, f"has several {key} volumes ({names})")
    return matches[0] if matches else None


def subject_files(folder: str | os.PathLike[str]) -> tuple[dict[str, Path], Path | None]:
    """Paths of the four Dixon volumes (by modality) and of the labels (None when absent).

    Raises:
        InputError: not a folder, or a modality missing.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "is not a subject folder (<NN>/<NN>_{fat,inn,opp,wat}.nii)")
    paths = {}
    for modality in MODALITIES:
        path = _find(folder, modality)
        if path is None:
            raise InputError(
                folder, f"has no {modality} volume ({folder.name}_{modality}.nii or .nii.gz)"
            )
        paths[modality] = path
    return paths, _find(folder, _LABELS)


def _load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        volume = nib.load(path)
        data = np.asarray(volume.dataobj, dtype=np.float32)
    except Exception as error:  # nibabel raises many kinds on a broken file
        raise InputError(path, f"is not a readable NIfTI volume ({error})") from None
    if data.ndim == 4 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(path, f"is not a 3-D volume (shape {data.shape})")
    if not np.isfinite(data).all():
        raise InputError(path, "holds NaN or infinite values")
    return data, np.asarray(volume.affine, dtype=np.float64)


def read_subject(folder: str | os.PathLike[str], labels: bool = True) -> Subject:
    """Read a subject folder: the four Dixon volumes and, if present and asked for, its labels.

    Raises:
        InputError: a missing modality, an unreadable or non-3-D volume, NaN values, volumes whose
            shapes or affines differ, labels other than 0/1.
    """
    folder = Path(folder)
    paths, label_path = subject_files(folder)
    volumes, affine, first = [], None, None
    for path in paths.values():
        data, this_affine = _load(path)
        if affine is None:
            affine, first = this_affine, path
        elif data.shape != volumes[0].shape:
            raise InputError(path, f"has shape {data.shape}, {first.name} {volumes[0].shape}")
        elif not np.allclose(this_affine, affine, atol=_AFFINE_TOLERANCE_MM):
            raise InputError(path, f"has another affine than {first.name} (not co-registered)")
        volumes.append(data)
    label_volume = None
    if labels and label_path is not None:
        data, this_affine = _load(label_path)
        if data.shape != volumes[0].shape or not np.allclose(
            this_affine, affine, atol=_AFFINE_TOLERANCE_MM
        ):
            raise InputError(label_path, f"does not match the shape or affine of {first.name}")
        values = np.unique(data)
        if not np.isin(values, (0, 1)).all():
            raise InputError(label_path, f"labels must be 0 or 1, found {values[:6].tolist()}")
        label_volume = data.astype(np.uint8)
    return Subject(folder.name, np.stack(volumes), affine, label_volume)


def find_subjects(root: str | os.PathLike[str]) -> list[Path]:
    """Subject folders under ``root`` (those holding a ``*_fat.nii[.gz]``), sorted; or ``root``
    itself when it is one.

    Raises:
        InputError: no subject found.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    if _find(root, "fat") is not None:
        return [root]
    found = sorted(p for p in root.iterdir() if p.is_dir() and _find(p, "fat") is not None)
    if not found:
        raise InputError(root, "holds no IVDM3Seg subject folder (<NN>/<NN>_fat.nii ...)")
    return found


def write_subject(
    root: str | os.PathLike[str],
    name: str,
    image: np.ndarray,
    affine: np.ndarray,
    labels: np.ndarray | None = None,
    compress: bool = True,
) -> Path:
    """Write ``root/name/name_{fat,inn,opp,wat}.nii[.gz]`` (+ ``name_Labels``); each file atomic.

    Args:
        image: (4, X, Y, Z) Dixon volumes in :data:`MODALITIES` order; stored as int16 (rounded,
            clipped to 0..32767), as scanners store magnitude images.
        affine: (4, 4) voxel -> world, mm.
        labels: (X, Y, Z) 0/1, stored as uint8.
        compress: ``.nii.gz`` instead of ``.nii``.
    """
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if compress else ".nii"
    stored = np.clip(np.rint(image), 0, 32767).astype(np.int16)
    for modality, volume in zip(MODALITIES, stored, strict=True):
        _save(nib.Nifti1Image(volume, affine), folder / f"{name}_{modality}{suffix}")
    if labels is not None:
        _save(nib.Nifti1Image(labels.astype(np.uint8), affine), folder / f"{name}_Labels{suffix}")
    return folder


def _save(volume: nib.Nifti1Image, path: Path) -> None:
    volume.header.set_xyzt_units("mm")
    with atomic_path(path) as temporary:
        # nibabel picks the compression from the name, so keep the suffix on the temporary file
        named = temporary.with_name(temporary.name + "".join(path.suffixes))
        nib.save(volume, named)
        os.replace(named, temporary)


def to_canonical(volume: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder and flip the last three axes to RAS (axis 0 left -> right: the sagittal slices).

    Args:
        volume: (..., X, Y, Z) in file orientation.
        affine: (4, 4) voxel -> world of the file.

    Returns:
        The volume in RAS axis order (a view when possible), and the orientation to pass to
        :func:`from_canonical`.
    """
    ornt = nib.orientations.io_orientation(affine)
    moved = _apply(volume, ornt)
    return moved, ornt


def from_canonical(volume: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    """Undo :func:`to_canonical` on the last three axes (same shape and order as the file)."""
    lead = volume.ndim - 3
    out = volume.transpose(list(range(lead)) + [lead + int(t) for t in ornt[:, 0]])
    for axis, flip in enumerate(ornt[:, 1]):
        if flip == -1:
            out = np.flip(out, lead + axis)
    return out


def _apply(volume: np.ndarray, ornt: np.ndarray) -> np.ndarray:
    lead = volume.ndim - 3
    out = volume
    for axis, flip in enumerate(ornt[:, 1]):
        if flip == -1:
            out = np.flip(out, lead + axis)
    order = list(range(lead)) + [lead + int(i) for i in np.argsort(ornt[:, 0])]
    return out.transpose(order)


def canonical_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size along the RAS axes of :func:`to_canonical`, mm."""
    ornt = nib.orientations.io_orientation(affine)
    sizes = np.linalg.norm(affine[:3, :3], axis=0)
    out = np.zeros(3)
    for axis, target in enumerate(ornt[:, 0]):
        out[int(target)] = sizes[axis]
    return tuple(float(v) for v in out)


def normalize(image: np.ndarray) -> np.ndarray:
    """Channel-wise normalization: each modality divided by its 99th percentile, clipped to [0, 3].

    Shapes: (C, ...) -> (C, ...) float32.
    """
    out = np.empty(image.shape, np.float32)
    for channel, volume in enumerate(image):
        scale = float(np.percentile(volume, 99))
        out[channel] = np.clip(volume / scale, 0, 3) if scale > 0 else 0
    return out


def read_png_slices(root: str | os.PathLike[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """IVD-Net's slice folders: ``root/{Fat,Inn,Opp,Wat,GT}/<name>.png`` (8- or 16-bit grey).

    Returns:
        Slice names (sorted), images (N, 4, H, W) float32 in [0, 1] (16-bit values / 65535,
        8-bit / 255) and labels (N, H, W) uint8 (GT > 0).

    Raises:
        InputError: a missing folder, names that differ between folders, shapes that differ, a
            colour or unreadable PNG.
    """
    from PIL import Image

    root = Path(root)
    folders = [root / name for name in (*PNG_FOLDERS, "GT")]
    for folder in folders:
        if not folder.is_dir():
            raise InputError(folder, "is missing (IVD-Net slices: Fat/, Inn/, Opp/, Wat/, GT/)")
    names = sorted(p.name for p in folders[0].glob("*.png"))
    if not names:
        raise InputError(folders[0], "holds no PNG slice")
    for folder in folders[1:]:
        others = sorted(p.name for p in folder.glob("*.png"))
        if others != names:
            raise InputError(folder, f"does not hold the same slice names as {folders[0].name}/")
    images, labels = [], []
    for name in names:
        planes = []
        for folder in folders:
            path = folder / name
            try:
                with Image.open(path) as picture:
                    if picture.mode not in ("L", "I", "I;16", "I;16B", "I;16L", "1"):
                        raise InputError(path, f"is not a grey PNG (mode {picture.mode})")
                    bits = 16 if picture.mode.startswith("I") else 8
                    plane = np.asarray(picture, dtype=np.float32)
            except InputError:
                raise
            except Exception as error:
                raise InputError(path, f"is not a readable PNG ({error})") from None
            if planes and plane.shape != planes[0].shape:
                raise InputError(path, f"has shape {plane.shape}, not {planes[0].shape}")
            planes.append(plane / (65535.0 if bits == 16 else 255.0))
        images.append(np.stack(planes[:4]))
        labels.append((planes[4] > 0).astype(np.uint8))
    return [n.removesuffix(".png") for n in names], np.stack(images), np.stack(labels)


def write_png_slices(
    root: str | os.PathLike[str], names: list[str], images: np.ndarray, labels: np.ndarray
) -> None:
    """Write slices in IVD-Net's layout: 16-bit PNGs of ``images`` (N, 4, H, W) in [0, 1], and
    ``GT`` as 8-bit 0/255."""
    from PIL import Image

    root = Path(root)
    for folder in (*PNG_FOLDERS, "GT"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, image, label in zip(names, images, labels, strict=True):
        for folder, plane in zip(PNG_FOLDERS, image, strict=True):
            values = np.clip(np.rint(plane * 65535), 0, 65535).astype(np.uint16)
            with atomic_path(root / folder / f"{name}.png") as path:
                Image.fromarray(values).save(path, format="PNG")
        with atomic_path(root / "GT" / f"{name}.png") as path:
            Image.fromarray((label > 0).astype(np.uint8) * 255).save(path, format="PNG")
