"""Chest radiographs in DICOM (pydicom): grey levels as displayed, and the pixel spacing in mm.

Clinics store x-rays as DICOM. The stored values go through the modality LUT (rescale slope and
intercept), then the VOI LUT or the window (centre/width) the file specifies, so the image is the
one a viewer shows; MONOCHROME1 images (high values dark) are inverted. The result is scaled to
[0, 1]. The pixel spacing is the mean of the row and column spacing of ``PixelSpacing`` (calibrated
at the patient) or else ``ImagerPixelSpacing`` (at the detector), in mm; None when the file has
neither.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from convsuite.core_ops.errors import InputError

__all__ = ["dicom_pixel_spacing", "dicom_shape", "is_dicom", "read_dicom"]

_PREAMBLE = 128


def is_dicom(path: str | os.PathLike[str]) -> bool:
    """True for a ``.dcm``/``.dicom`` file name or a file with the ``DICM`` marker at byte 128."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as handle:
            handle.seek(_PREAMBLE)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def _header(path: Path):
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as error:  # pydicom raises several kinds on a broken file
        raise InputError(path, f"is not a readable DICOM file ({error})") from None


def dicom_shape(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(rows, columns) from the header, without decoding pixels.

    Raises:
        InputError: unreadable file, no image, several frames or colour samples.
    """
    path = Path(path)
    header = _header(path)
    rows, columns = header.get("Rows"), header.get("Columns")
    if not rows or not columns:
        raise InputError(path, "is a DICOM file without an image (no Rows/Columns)")
    if int(header.get("NumberOfFrames", 1) or 1) != 1:
        raise InputError(path, "holds several frames; a radiograph is one image")
    return int(rows), int(columns)


def dicom_pixel_spacing(path: str | os.PathLike[str]) -> float | None:
    """mm per pixel: mean of ``PixelSpacing`` (else ``ImagerPixelSpacing``), or None."""
    header = _header(Path(path))
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = header.get(keyword)
        if value is not None and len(value) == 2 and min(float(v) for v in value) > 0:
            return float(np.mean([float(v) for v in value]))
    return None


def read_dicom(path: str | os.PathLike[str]) -> np.ndarray:
    """The displayed grey image: (H, W) float32 in [0, 1] (modality LUT, VOI LUT or window,
    MONOCHROME1 inverted).

    Raises:
        InputError: unreadable file or pixel data, colour (not MONOCHROME1/2), several frames.
    """
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = Path(path)
    dicom_shape(path)
    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array
    except Exception as error:
        raise InputError(path, f"DICOM pixel data is unreadable ({error})") from None
    interpretation = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    if interpretation not in ("MONOCHROME1", "MONOCHROME2") or pixels.ndim != 2:
        raise InputError(path, f"is a {interpretation} DICOM image; radiographs are grey")
    values = apply_modality_lut(pixels, dataset)
    values = apply_voi_lut(values, dataset).astype(np.float64)
    low, high = float(values.min()), float(values.max())
    image = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if interpretation == "MONOCHROME1":
        image = 1.0 - image
    return image.astype(np.float32)
