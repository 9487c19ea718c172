"""Chest radiographs in DICOM: MONOCHROME1 inverted, the window applied, the pixel spacing used."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from convsuite.core_ops.errors import InputError
from convsuite.medseg.data.images import (
    check_radiograph,
    default_pixel_spacing,
    radiograph_spacing,
    read_radiograph,
)

if TYPE_CHECKING:
    from conftest import Medseg

DX_STORAGE = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    photometric: str = "MONOCHROME2",
    window: tuple[float, float] | None = None,
    spacing: tuple[str, float] | None = None,
) -> Path:
    """A minimal DX file: 12-bit unsigned pixels, optional window and (keyword, mm) spacing."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DX_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = DX_STORAGE, meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if spacing is not None:
        setattr(ds, spacing[0], [spacing[1], spacing[1]])
    ds.save_as(path, enforce_file_format=True)
    return path


def _ramp() -> np.ndarray:
    return (np.arange(64 * 48).reshape(64, 48) % 4096).astype(np.uint16)


def test_monochrome1_is_inverted_and_the_window_applied(tmp_path: Path) -> None:
    pixels = _ramp()
    plain = read_radiograph(write_dicom(tmp_path / "m2.dcm", pixels))
    np.testing.assert_allclose(plain, pixels / pixels.max(), atol=1e-6)
    inverted = read_radiograph(write_dicom(tmp_path / "m1.dcm", pixels, "MONOCHROME1"))
    np.testing.assert_allclose(inverted, 1 - plain, atol=1e-6)
    windowed = read_radiograph(write_dicom(tmp_path / "w.dcm", pixels, window=(1000, 500)))
    inside = (pixels > 800) & (pixels < 1200)
    assert (windowed[pixels <= 750] == 0).all() and (windowed[pixels >= 1250] == 1).all()
    # linear inside the window (DICOM PS3.3 C.11.2.1.2): a slope of 1/500 per grey level
    levels, values = pixels[inside].astype(float), windowed[inside]
    np.testing.assert_allclose(np.polyfit(levels, values, 1)[0], 1 / 499, rtol=0.01)
    assert check_radiograph(tmp_path / "w.dcm") == (64, 48)
    # a DICOM file without the .dcm suffix is recognized by its DICM marker
    shutil.copy(tmp_path / "m1.dcm", tmp_path / "no_suffix")
    np.testing.assert_array_equal(read_radiograph(tmp_path / "no_suffix"), inverted)


def test_pixel_spacing_from_pixel_or_imager_spacing(tmp_path: Path) -> None:
    pixels = _ramp()
    assert radiograph_spacing(write_dicom(tmp_path / "a.dcm", pixels)) is None
    path = write_dicom(tmp_path / "b.dcm", pixels, spacing=("PixelSpacing", 0.143))
    assert radiograph_spacing(path) == pytest.approx(0.143)
    path = write_dicom(tmp_path / "c.dcm", pixels, spacing=("ImagerPixelSpacing", 0.2))
    assert radiograph_spacing(path) == pytest.approx(0.2)
    (tmp_path / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    with pytest.raises(InputError, match="bad.dcm"):
        read_radiograph(tmp_path / "bad.dcm")


def test_segment_and_evaluate_a_dicom_radiograph(
    tiny_weights: Path, tmp_path: Path, medseg: Medseg
) -> None:
    from convsuite.medseg.data.layout import write_sample
    from convsuite.medseg.data.phantom import PhantomOptions, simulate_phantoms
    from convsuite.medseg.evaluate import evaluate_dataset
    from convsuite.medseg.models.hybridgnet import HybridGNet

    phantom = next(simulate_phantoms(1, 4, PhantomOptions(size=128)))
    root = tmp_path / "data"
    write_sample(root, "p", phantom.image, phantom.landmarks)
    net = HybridGNet.from_pretrained(tiny_weights)
    png = evaluate_dataset(net, root, progress=False)["HybridGNet"]
    (root / "images" / "p.png").unlink()
    pixels = np.round(phantom.image * 4095).astype(np.uint16)
    spacing = 2 * default_pixel_spacing(128)
    write_dicom(root / "images" / "p.dcm", pixels, spacing=("PixelSpacing", spacing))
    dicom = evaluate_dataset(net, root, progress=False)["HybridGNet"]
    for organ, distances in png.hausdorff_mm.items():  # the same masks, twice the mm per pixel
        np.testing.assert_allclose(dicom.hausdorff_mm[organ], 2 * np.asarray(distances), rtol=0.05)
    out = tmp_path / "out"
    assert (
        medseg("cxr", "segment", root / "images" / "p.dcm", "--weights", tiny_weights, "--out", out)
        == 0
    )
    assert (out / "p.json").is_file()
