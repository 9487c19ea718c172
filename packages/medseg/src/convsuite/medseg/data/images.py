"""Reading and writing chest radiographs: PNG (8/16-bit grey, 1-bit, palette), JPEG, DICOM
(:mod:`convsuite.medseg.data.dicom`) and JSRT raw ``.IMG``.

Colour PNG/JPEG images (screenshots of a viewer) are converted to grey (ITU-R 601 luma) with a
warning instead of being refused.

Images become (H, W) float32 arrays in [0, 1]. JSRT's 247 ``.IMG`` files are 2048 x 2048 big-endian
uint16 without a header, 12 significant bits, stored with high values for dark (air): the dataset's
own convention is ``image = 1 - value / 4096``.

The size is read from the header before any pixel is decoded, and images whose segmentation would
need more than :data:`MAX_IMAGE_BYTES` are refused: a 17 KB 1-bit PNG can claim 12000 x 12000 pixels.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from convsuite.core_ops.io import InputError, atomic_path, check_budget
from convsuite.medseg.data.dicom import dicom_pixel_spacing, dicom_shape, is_dicom, read_dicom

JSRT_SHAPE = (2048, 2048)
JSRT_PIXEL_SPACING_MM = 0.175
"""JSRT detector pitch; 0.35 mm at the 1024-pixel size of the landmark dataset."""
JSRT_SPACING_AT_1024_MM = 0.35


def default_pixel_spacing(image_width: int) -> float:
    """mm per pixel when none is given: the JSRT field of view (1024 px at 0.35 mm) at this width."""
    return JSRT_SPACING_AT_1024_MM * 1024 / image_width


BYTES_PER_PIXEL = 64
"""Peak memory of reading and segmenting a radiograph per input pixel (measured with ``medseg cxr
segment``: 0.73 GB at 2048 x 2048, 1.53 GB at 4096 x 4096, about 0.46 GB of it fixed)."""
MAX_IMAGE_BYTES = 3 * 2**29
"""The most :data:`BYTES_PER_PIXEL` x pixels an image may need: 1.5 GiB, 25 M pixels (5000 x
5000; the largest chest detectors give 4300 x 4300), so a segmentation stays under 2.5 GB."""


def check_radiograph(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Check a radiograph from its header, without decoding it; returns its (height, width).

    Raises:
        InputError: missing file, not an image, an image too large to segment (over
            :data:`MAX_IMAGE_BYTES`), or (``.IMG``) not the JSRT size.
    """
    path = _existing_file(path)
    if path.suffix.lower() == ".img":
        _check_jsrt_size(path)
        return JSRT_SHAPE
    if is_dicom(path):
        height, width = dicom_shape(path)
        check_budget(
            path, height * width * BYTES_PER_PIXEL, f"a {width} x {height} image", MAX_IMAGE_BYTES
        )
        return height, width
    with _open_picture(path) as picture:
        width, height = picture.size
    return height, width


def read_radiograph(path: str | os.PathLike[str]) -> np.ndarray:
    """A grey radiograph as (H, W) float32 in [0, 1]; ``.IMG`` is read as JSRT raw, DICOM as shown.

    A paletted PNG is read through its palette; a colour image (RGB PNG, JPEG, colour palette) is
    converted to grey with a warning; 16-bit PNGs are scaled by 65535, 8-bit by 255. DICOM files
    (``.dcm``, or the ``DICM`` marker) get their modality and VOI LUTs (or window) applied and
    MONOCHROME1 inverted (:func:`convsuite.medseg.data.dicom.read_dicom`).

    Raises:
        InputError: missing or unreadable file, an image too large to segment (checked from the
            header, before decoding), NaN, colour DICOM, or an ``.IMG`` of the wrong size.
    """
    path = _existing_file(path)
    if path.suffix.lower() == ".img":
        image = _read_jsrt(path)
    elif is_dicom(path):
        check_radiograph(path)
        image = read_dicom(path)
    else:
        image = _read_picture(path)
    if not np.isfinite(image).all():
        raise InputError(path, "image contains NaN or infinite values")
    return image


def _check_jsrt_size(path: Path) -> None:
    expected = JSRT_SHAPE[0] * JSRT_SHAPE[1] * 2
    size = path.stat().st_size
    if size != expected:
        raise InputError(
            path, f"a JSRT .IMG is {expected} bytes (2048 x 2048 big-endian uint16), got {size}"
        )


def _read_jsrt(path: Path) -> np.ndarray:
    _check_jsrt_size(path)
    raw = np.fromfile(path, dtype=">u2").reshape(JSRT_SHAPE)
    return np.clip(1.0 - raw.astype(np.float32) / 4096.0, 0.0, 1.0)


def _existing_file(path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "is not a file" if path.exists() else "file does not exist")
    return path


@contextmanager
def _open_picture(path: Path) -> Iterator[Image.Image]:
    """Open ``path`` lazily (Pillow reads the header only) and refuse it if it is too large."""
    try:
        with warnings.catch_warnings():  # our budget replaces Pillow's decompression-bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            picture = Image.open(path)
    except Image.DecompressionBombError as error:  # Pillow refuses to open it at all
        pixels = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        what = f"an image of more than {pixels / 1e6:.0f} M pixels"
        check_budget(path, pixels * BYTES_PER_PIXEL, what, MAX_IMAGE_BYTES)
        raise InputError(path, str(error)) from None
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(path, f"is not a readable image ({error})") from None
    with picture:
        width, height = picture.size
        what = f"a {width} x {height} image"
        check_budget(path, width * height * BYTES_PER_PIXEL, what, MAX_IMAGE_BYTES)
        yield picture


def _read_picture(path: Path) -> np.ndarray:
    with _open_picture(path) as picture:
        try:
            if picture.mode in ("P", "PA"):  # palette indices are not grey levels
                alpha = picture.mode == "PA" or "transparency" in picture.info
                picture = picture.convert("RGBA" if alpha else "RGB")
            mode = picture.mode
            array = np.asarray(picture)
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise InputError(path, f"pixel data is unreadable ({error})") from None
    if array.ndim == 3:
        channels = array.shape[-1]
        grey = array[..., :3] if channels >= 3 else array[..., :1]
        if channels >= 3 and not (
            np.array_equal(grey[..., 0], grey[..., 1])
            and np.array_equal(grey[..., 0], grey[..., 2])
        ):
            warnings.warn(
                f"{path}: a {channels}-channel colour image, converted to grey (ITU-R 601 luma)",
                stacklevel=3,
            )
            luma = grey[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
            grey = np.round(luma).astype(array.dtype)[..., None]
        array = grey[..., 0]
    if array.ndim != 2 or min(array.shape) < 32:
        raise InputError(path, f"expected a 2-D grey image of at least 32 x 32, got {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(np.float32)
    scale = 65535.0 if mode.startswith("I;16") or array.dtype == np.uint16 else 255.0
    if np.issubdtype(array.dtype, np.floating):
        scale = 1.0
    return np.clip(array.astype(np.float32) / scale, 0.0, 1.0)


def radiograph_spacing(path: str | os.PathLike[str]) -> float | None:
    """mm per pixel stored in the file (DICOM ``PixelSpacing``/``ImagerPixelSpacing``), or None."""
    return dicom_pixel_spacing(path) if is_dicom(path) else None


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Write a [0, 1] (H, W) image as 8-bit grey PNG, or a bool/uint8 mask as 0/255, atomically."""
    array = np.asarray(image)
    if array.dtype == np.bool_:
        pixels = array.astype(np.uint8) * 255
    elif array.dtype == np.uint8:
        pixels = array
    else:
        pixels = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")
    return Path(path)


def read_mask(path: str | os.PathLike[str]) -> np.ndarray:
    """A Montgomery/Shenzhen-style binary mask PNG as (H, W) bool (non-zero = organ)."""
    return read_radiograph(path) > 0.5
