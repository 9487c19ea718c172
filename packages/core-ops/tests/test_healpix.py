"""HEALPix face stacks and face padding against healpy's own pixel geometry and neighbours."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import check_layer

from convsuite.core_ops.layers import (
    HEALPixConv2d,
    HEALPixPad,
    faces_from_nest,
    healpix_padding_index,
    nest_from_faces,
    nest_to_face_order,
)


@pytest.mark.parametrize("nside", [1, 2, 8, 32])
def test_face_order_is_healpy_xyf(nside: int) -> None:
    order = nest_to_face_order(nside)
    x, y, face = hp.pix2xyf(nside, order, nest=True)
    raster = np.arange(12 * nside * nside)
    np.testing.assert_array_equal(face * nside * nside + x * nside + y, raster)


def test_faces_round_trip() -> None:
    maps = torch.randn(3, 2, 12 * 16 * 16)
    faces = faces_from_nest(maps)
    assert faces.shape == (3, 2, 12, 16, 16)
    torch.testing.assert_close(nest_from_faces(faces), maps, rtol=0, atol=0)
    with pytest.raises(ValueError, match="not a HEALPix pixel count"):
        faces_from_nest(torch.zeros(100))


def test_slot_offsets_are_healpy_neighbour_order() -> None:
    nside = 8
    centre = hp.xyf2pix(nside, 3, 4, 5, nest=True)
    x, y, face = hp.pix2xyf(nside, hp.get_all_neighbours(nside, centre, nest=True), nest=True)
    from convsuite.core_ops.layers.healpix import _SLOT_OFFSETS

    assert list(zip(x - 3, y - 4, strict=True)) == list(_SLOT_OFFSETS)
    assert (face == 5).all()


def _pixel_vectors(nside: int, padding: int) -> np.ndarray:
    """Unit vectors (12, side, side, 3) of the pixels the padded stack holds."""
    vectors = np.stack(hp.pix2vec(nside, nest_to_face_order(nside), nest=True), 1)
    return vectors[healpix_padding_index(nside, padding)]


@pytest.mark.parametrize(("nside", "padding"), [(4, 1), (8, 3), (16, 2), (32, 8)])
def test_padded_strips_continue_across_face_edges(nside: int, padding: int) -> None:
    """Neighbouring entries of the padded stack are neighbouring pixels on the sphere."""
    vectors = _pixel_vectors(nside, padding)
    side = nside + 2 * padding
    corner = np.zeros((side, side), dtype=bool)
    for rows in (slice(0, padding), slice(side - padding, side)):
        for cols in (slice(0, padding), slice(side - padding, side)):
            corner[rows, cols] = True
    resolution = hp.nside2resol(nside)
    for axis in (1, 2):
        a = np.take(vectors, np.arange(side - 1), axis=axis)
        b = np.take(vectors, np.arange(1, side), axis=axis)
        step = np.arccos(np.clip((a * b).sum(-1), -1, 1)) / resolution
        pair_in_corner = np.take(corner, np.arange(side - 1), axis=axis - 1) | np.take(
            corner, np.arange(1, side), axis=axis - 1
        )
        steps = step[:, ~pair_in_corner]
        assert steps.max() < 1.6  # one pixel step (HEALPix pixels are not square)
        assert steps.min() > 0.5  # never the same pixel twice along a strip


@pytest.mark.parametrize("nside", [2, 8, 16])
def test_pad_then_box_filter_is_the_mean_over_healpy_neighbours(nside: int) -> None:
    """A 3 x 3 mean on padded faces = the mean of each pixel and its 8 healpy neighbours."""
    rng = np.random.default_rng(0)
    sky = rng.normal(size=12 * nside * nside)
    faces = faces_from_nest(torch.tensor(sky)).reshape(12, 1, nside, nside)
    mean = F.conv2d(HEALPixPad(1)(faces), torch.full((1, 1, 3, 3), 1 / 9, dtype=torch.float64))
    got = nest_from_faces(mean.reshape(12, nside, nside)).numpy()
    neighbours = hp.get_all_neighbours(nside, np.arange(sky.size), nest=True)
    eight = (neighbours >= 0).all(0)
    expected = (sky + np.where(neighbours >= 0, sky[neighbours], 0).sum(0)) / 9
    np.testing.assert_allclose(got[eight], expected[eight], rtol=0, atol=1e-12)
    # The 24 pixels with 7 neighbours sit at the eight vertices where three faces meet.
    assert (~eight).sum() == 24


def test_pad_batches_maps_independently() -> None:
    torch.manual_seed(0)
    two = torch.randn(24, 3, 8, 8)
    padded = HEALPixPad(2)(two)
    assert padded.shape == (24, 3, 12, 12)
    torch.testing.assert_close(padded[12:], HEALPixPad(2)(two[12:]), rtol=0, atol=0)
    torch.testing.assert_close(padded[:, :, 2:-2, 2:-2], two, rtol=0, atol=0)
    with pytest.raises(ValueError, match="face stacks"):
        HEALPixPad(1)(torch.randn(5, 3, 8, 8))


def test_healpix_conv_layer_battery() -> None:
    check_layer(
        lambda: HEALPixConv2d(2, 3, 3, dilation=2), (12, 2, 8, 8), gradcheck_shape=(12, 2, 4, 4)
    )


def test_healpix_conv_rotates_with_the_sky() -> None:
    """A rotation by 90 deg about the polar axis permutes faces exactly: a conv commutes with it.

    Rotating the sky by 90 deg in longitude maps face f of each ring to the next one with the same
    face frame, so a HEALPix convolution with face padding must give the rotated output.
    """
    nside = 8
    torch.manual_seed(0)
    conv = HEALPixConv2d(1, 2, 3, dilation=2).double()
    sky = torch.randn(12 * nside * nside, dtype=torch.float64)
    faces = faces_from_nest(sky).reshape(12, 1, nside, nside)
    ring = torch.tensor([1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8])
    rotated = torch.empty_like(faces)
    rotated[ring] = faces
    out, out_rotated = conv(faces), conv(rotated)
    torch.testing.assert_close(out_rotated[ring], out, rtol=1e-12, atol=1e-12)
    # Check the premise with healpy: the face permutation is the 90 deg rotation.
    theta, phi = hp.pix2ang(nside, np.arange(12 * nside * nside), nest=True)
    moved = hp.ang2pix(nside, theta, phi + np.pi / 2, nest=True)
    order = nest_to_face_order(nside)
    assert (moved[order] // nside**2 == np.repeat(ring.numpy(), nside * nside)).all()


def test_tables_first_built_in_inference_mode_still_train() -> None:
    """The cached index tables must not become inference tensors (they are saved for backward)."""
    with torch.inference_mode():
        faces_from_nest(torch.zeros(12 * 64 * 64))
        HEALPixPad(3)(torch.zeros(12, 1, 64, 64))
    x = torch.randn(12 * 64 * 64, requires_grad=True)
    padded = HEALPixPad(3)(faces_from_nest(x).reshape(12, 1, 64, 64))
    padded.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_tables_first_built_under_export_stay_real() -> None:
    """A first use at a new Nside inside torch.export must not cache fake index tensors."""
    from convsuite.core_ops.layers.healpix import _border_tables, _torch_order

    class FromNest(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = HEALPixConv2d(2, 3, kernel_size=3)

        def forward(self, nest_maps: torch.Tensor) -> torch.Tensor:
            return self.conv(faces_from_nest(nest_maps).transpose(1, 2).flatten(0, 1))

    nside = 32  # used by no other test, so the export below builds its tables
    net = FromNest().eval()
    maps = torch.randn(2, 2, 12 * nside * nside)
    exported = torch.export.export(net, (maps,))
    tables = [_torch_order(nest_to_face_order, nside), *_border_tables(nside, 1)]
    assert all(type(t) is torch.Tensor for t in tables)
    torch.testing.assert_close(exported.module()(maps), net(maps))
