"""IVDM3Seg reader/writer, orientation handling, PNG slices, discs and the spine phantom."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from convsuite.core_ops.errors import InputError
from convsuite.medseg.data.discs import find_discs
from convsuite.medseg.data.ivdm3seg import (
    MODALITIES,
    find_subjects,
    from_canonical,
    read_png_slices,
    read_subject,
    to_canonical,
    write_png_slices,
    write_subject,
)
from convsuite.medseg.data.spine_phantom import SpineOptions, simulate_spine

SMALL_SPINE = {"shape": (12, 128, 128), "spacing": (6.0, 2.5, 2.5)}
OPTIONS = SpineOptions(**SMALL_SPINE)


def test_phantom_is_seeded_and_has_seven_labelled_discs() -> None:
    a, b = simulate_spine(3, OPTIONS), simulate_spine(3, OPTIONS)
    np.testing.assert_array_equal(a.image, b.image)
    assert not np.array_equal(a.image, simulate_spine(4, OPTIONS).image)
    assert SpineOptions().shape == (36, 256, 256) and SpineOptions().spacing == (2.0, 1.25, 1.25)
    full = simulate_spine(3, SpineOptions(**SMALL_SPINE, reorient=False))
    assert full.image.shape == (4, 12, 128, 128)
    _, count = ndimage.label(full.labels, structure=np.ones((3, 3, 3)))
    assert count == 7
    spacing = np.linalg.norm(full.affine[:3, :3], axis=0)
    np.testing.assert_allclose(spacing, SMALL_SPINE["spacing"])
    # discs are water: bright on water, dark on fat; opposed-phase = |water - fat| >= 0
    fat, inn, opp, wat = (full.image[i][full.labels > 0].mean() for i in range(4))
    assert wat > 3 * fat and inn > opp * 0.8 and (full.image >= 0).all()


def test_reoriented_phantom_is_the_same_anatomy_after_to_canonical() -> None:
    plain = simulate_spine(8, SpineOptions(**SMALL_SPINE, reorient=False))
    moved = simulate_spine(8, OPTIONS)
    canonical, ornt = to_canonical(moved.labels, moved.affine)
    np.testing.assert_array_equal(canonical, plain.labels)
    np.testing.assert_array_equal(from_canonical(canonical, ornt), moved.labels)
    image, _ = to_canonical(moved.image, moved.affine)
    np.testing.assert_array_equal(image, plain.image)
    # the same discs in world coordinates whatever the storage order
    _, a = find_discs(moved.labels, moved.affine)
    _, b = find_discs(plain.labels, plain.affine)
    np.testing.assert_allclose([d.centroid_mm for d in a], [d.centroid_mm for d in b], atol=1e-6)
    assert [d.index for d in a] == list(range(1, 8))
    heights = [d.centroid_mm[2] for d in a]
    assert heights == sorted(heights, reverse=True)  # head to feet


@pytest.mark.parametrize("compress", [True, False])
def test_nifti_round_trip(tmp_path: Path, compress: bool) -> None:
    phantom = simulate_spine(2, OPTIONS)
    folder = write_subject(
        tmp_path, "07", phantom.image, phantom.affine, phantom.labels, compress=compress
    )
    suffix = ".nii.gz" if compress else ".nii"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"07_{m}{suffix}" for m in MODALITIES] + [f"07_Labels{suffix}"]
    )
    subject = read_subject(folder)
    np.testing.assert_array_equal(subject.image, np.rint(phantom.image))
    np.testing.assert_array_equal(subject.labels, phantom.labels)
    np.testing.assert_allclose(subject.affine, phantom.affine)
    assert find_subjects(tmp_path) == [folder] and find_subjects(folder) == [folder]


def _subject(tmp_path: Path) -> Path:
    phantom = simulate_spine(1, SpineOptions(**SMALL_SPINE, reorient=False))
    return write_subject(tmp_path, "01", phantom.image, phantom.affine, phantom.labels)


def test_bad_subjects_are_refused_in_one_line(tmp_path: Path) -> None:
    folder = _subject(tmp_path)
    (folder / "01_opp.nii.gz").unlink()
    with pytest.raises(InputError, match="has no opp volume"):
        read_subject(folder)
    folder = _subject(tmp_path / "shape")
    volume = nib.load(folder / "01_wat.nii.gz")
    small = np.asarray(volume.dataobj)[:, :, :-1]
    nib.save(nib.Nifti1Image(small, volume.affine), folder / "01_wat.nii.gz")
    with pytest.raises(InputError, match=r"01_wat.nii.gz.*has shape"):
        read_subject(folder)
    folder = _subject(tmp_path / "affine")
    volume = nib.load(folder / "01_inn.nii.gz")
    shifted = volume.affine.copy()
    shifted[0, 3] += 5
    nib.save(nib.Nifti1Image(np.asarray(volume.dataobj), shifted), folder / "01_inn.nii.gz")
    with pytest.raises(InputError, match="another affine"):
        read_subject(folder)
    folder = _subject(tmp_path / "nan")
    volume = nib.load(folder / "01_fat.nii.gz")
    data = np.asarray(volume.dataobj).astype(np.float32)
    data[3, 3, 3] = np.nan
    nib.save(nib.Nifti1Image(data, volume.affine), folder / "01_fat.nii.gz")
    with pytest.raises(InputError, match="NaN"):
        read_subject(folder)
    for error in (InputError("x", "y"),):
        assert "\n" not in str(error)


def test_png_slices_round_trip_and_refusals(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = rng.random((3, 4, 32, 24)).astype(np.float32)
    labels = (rng.random((3, 32, 24)) > 0.7).astype(np.uint8)
    names = ["s_000", "s_001", "s_002"]
    write_png_slices(tmp_path, names, images, labels)
    read_names, read_images, read_labels = read_png_slices(tmp_path)
    assert read_names == names
    np.testing.assert_allclose(read_images, images, atol=1 / 65535)
    np.testing.assert_array_equal(read_labels, labels)
    (tmp_path / "Opp" / "s_001.png").unlink()
    with pytest.raises(InputError, match="same slice names"):
        read_png_slices(tmp_path)
