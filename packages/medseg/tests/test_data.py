"""Readers, the dataset layout, preprocessing and mask/contour conversion."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convsuite.core_ops.io import InputError
from convsuite.medseg.data.images import read_radiograph, write_png
from convsuite.medseg.data.landmarks import ORGAN_SIZES, from_flat, to_flat
from convsuite.medseg.data.layout import scan_dataset, write_sample
from convsuite.medseg.data.masks import contour_to_mask, mask_to_contour, signed_area
from convsuite.medseg.data.preprocess import fit_to_square
from convsuite.medseg.metrics import dice


def _ellipse(n: int, centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """n points counter-clockwise on screen (y down), starting at the top."""
    angle = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([centre[0] - radii[0] * np.sin(angle), centre[1] - radii[1] * np.cos(angle)], 1)


def _landmarks(scale: float = 1.0) -> dict[str, np.ndarray]:
    return {
        "RL": _ellipse(44, (30 * scale, 50 * scale), (15 * scale, 30 * scale)),
        "LL": _ellipse(50, (70 * scale, 50 * scale), (15 * scale, 30 * scale)),
        "H": _ellipse(26, (58 * scale, 65 * scale), (14 * scale, 12 * scale)),
    }


def test_flat_arrays_round_trip_and_reject_wrong_counts() -> None:
    landmarks = _landmarks()
    flat = to_flat(landmarks)
    assert flat.shape == (240,)
    back = from_flat(flat, "x.npy")
    for organ in landmarks:
        np.testing.assert_array_equal(back[organ], landmarks[organ])
    with pytest.raises(InputError, match="x.npy: a flat landmark array needs 120 or 166"):
        from_flat(np.zeros(100), "x.npy")
    bad = flat.copy()
    bad[3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        from_flat(bad, "x.npy")


def test_jsrt_raw_image_is_read_as_the_dataset_defines(tmp_path) -> None:  # noqa: ANN001
    raw = np.full((2048, 2048), 4095, dtype=">u2")
    raw[:1024] = 0
    path = tmp_path / "JPCLN001.IMG"
    raw.tofile(path)
    image = read_radiograph(path)
    assert image.shape == (2048, 2048) and image.dtype == np.float32
    assert image[0, 0] == pytest.approx(1.0) and image[-1, 0] == pytest.approx(1 / 4096)
    (tmp_path / "short.IMG").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="short.IMG: a JSRT .IMG is 8388608 bytes"):
        read_radiograph(tmp_path / "short.IMG")


def test_png_reading_and_bad_images(tmp_path) -> None:  # noqa: ANN001
    grey = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    write_png(tmp_path / "g.png", grey)
    np.testing.assert_allclose(read_radiograph(tmp_path / "g.png"), grey, atol=1 / 255)
    Image.fromarray((np.arange(64 * 64, dtype=np.uint16) * 16).reshape(64, 64)).save(
        tmp_path / "s.png"
    )
    assert read_radiograph(tmp_path / "s.png").max() > 0.9  # 16-bit scale kept
    colour = np.zeros((64, 64, 3), dtype=np.uint8)
    colour[..., 0] = 200
    Image.fromarray(colour).save(tmp_path / "c.png")
    with pytest.warns(UserWarning, match="c.png: a 3-channel colour image, converted to grey"):
        red = read_radiograph(tmp_path / "c.png")
    np.testing.assert_allclose(red, round(0.299 * 200) / 255, atol=1e-6)  # ITU-R 601 luma
    (tmp_path / "t.png").write_text("not an image")
    with pytest.raises(InputError, match="t.png: is not a readable image"):
        read_radiograph(tmp_path / "t.png")
    with pytest.raises(InputError, match="does not exist"):
        read_radiograph(tmp_path / "missing.png")


def test_layout_round_trip_and_missing_landmarks(tmp_path) -> None:  # noqa: ANN001
    image = np.random.default_rng(0).random((100, 100)).astype(np.float32)
    write_sample(tmp_path, "a", image, _landmarks())
    (sample,) = scan_dataset(tmp_path)
    read_image, landmarks = sample.read()
    assert read_image.shape == (100, 100)
    np.testing.assert_array_equal(landmarks["H"], _landmarks()["H"])
    write_png(tmp_path / "images" / "b.png", image)
    with pytest.raises(InputError, match="b.png: has no landmark file for RL, LL, H"):
        scan_dataset(tmp_path)
    np.save(tmp_path / "landmarks" / "RL" / "a.npy", np.zeros((40, 2)))
    (tmp_path / "images" / "b.png").unlink()
    with pytest.raises(InputError, match=r"RL needs \(44, 2\) landmarks"):
        scan_dataset(tmp_path)[0].read()


def test_preprocessing_moves_landmarks_with_the_image() -> None:
    """A bright disc drawn at a landmark lands where the transformed landmark says."""
    image = np.zeros((300, 500), dtype=np.float32)
    image[40:260, 60:460] = 0.2  # non-zero field of view, cropped first
    yy, xx = np.mgrid[0:300, 0:500] + 0.5
    point = np.array([[321.0, 111.0]])
    image[(xx - point[0, 0]) ** 2 + (yy - point[0, 1]) ** 2 < 36] = 1.0
    square, fit = fit_to_square(image, 128)
    assert square.shape == (128, 128) and fit.side == 400
    moved = fit.to_model(point)[0]
    ys, xs = np.nonzero(square > 0.6)
    np.testing.assert_allclose([xs.mean() + 0.5, ys.mean() + 0.5], moved, atol=0.6)
    np.testing.assert_allclose(fit.to_image(fit.to_model(point)), point)


def test_mask_and_contour_round_trip() -> None:
    contour = _ellipse(44, (50, 40), (20, 30))
    mask = contour_to_mask(contour, (100, 100))
    back = mask_to_contour(mask, 44)
    assert back.shape == (44, 2) and signed_area(back) > 0
    assert dice(contour_to_mask(back, (100, 100)), mask) > 0.97
    np.testing.assert_allclose(back[0], contour[0], atol=1.5)  # starts at the top
    with pytest.raises(ValueError, match="empty"):
        mask_to_contour(np.zeros((10, 10), bool), 44)


def test_organ_sizes_are_the_datasets() -> None:
    assert ORGAN_SIZES == {"RL": 44, "LL": 50, "H": 26, "RCLA": 23, "LCLA": 23}
