"""FITS reading/writing with healpy, masks, and the simulator."""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from convsuite.core_ops.io import InputError
from convsuite.cosmo.data import (
    apply_mask,
    galactic_cut,
    lcdm_cl,
    point_source_mask,
    read_mask,
    read_sky_map,
    simulate_cmb,
    simulate_sky,
    ud_grade_nest,
    write_sky_map,
)
from convsuite.cosmo.metrics import binned_spectrum, cosmic_variance_band

NSIDE = 16


def _write(path: Path, maps, nest: bool, **kwargs) -> Path:
    hp.write_map(str(path), maps, nest=nest, overwrite=True, **kwargs)
    return path


@pytest.mark.parametrize("nest", [False, True])
def test_round_trip_keeps_ordering_units_columns_and_header(tmp_path: Path, nest: bool) -> None:
    sky = np.random.default_rng(0).normal(size=12 * NSIDE**2)
    path = _write(
        tmp_path / "in.fits",
        sky,
        nest,
        column_names=["I_STOKES"],
        column_units="uK_CMB",
        extra_header=[("TELESCOP", "SIM"), ("COORDSYS", "G")],
        dtype=np.float64,
    )
    read = read_sky_map(path)
    assert read.values.dtype == np.float32 and read.values.dtype.byteorder in ("=", "<")
    order = "NESTED" if nest else "RING"
    assert (read.ordering, read.unit, read.column) == (order, "uK_CMB", "I_STOKES")
    expected = sky if nest else hp.reorder(sky, r2n=True)
    np.testing.assert_allclose(read.values, expected, rtol=1e-6)
    out = write_sky_map(read, tmp_path / "out.fits", history="test")
    with fits.open(out) as hdus:
        header = hdus[1].header
        assert header["ORDERING"] == order and header["TELESCOP"] == "SIM"
        assert header["TTYPE1"] == "I_STOKES" and header["TUNIT1"] == "uK_CMB"
        assert "test" in str(header["HISTORY"])
    again = read_sky_map(out)
    np.testing.assert_array_equal(again.values, read.values)


def test_holes_fields_and_partial_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    t, q = rng.normal(size=(2, 12 * NSIDE**2))
    t[:10] = hp.UNSEEN
    t[10:20] = np.nan
    path = _write(tmp_path / "tq.fits", [t, q], nest=False)
    read = read_sky_map(path)
    ring_holes = hp.reorder(~read.observed, n2r=True)
    assert ring_holes[:20].all() and ring_holes.sum() == 20
    assert read.values[~read.observed].max() == 0.0
    np.testing.assert_allclose(
        read_sky_map(path, field=1).values, hp.reorder(q, r2n=True), rtol=1e-6
    )
    with pytest.raises(InputError, match="no field 2"):
        read_sky_map(path, field=2)
    # an explicit-index (partial-sky) file: PIXEL and SIGNAL columns, 100 pixels present
    pixels = np.arange(100, dtype=np.int32) * 7
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="PIXEL", format="J", array=pixels),
            fits.Column(name="SIGNAL", format="E", array=q[pixels].astype(np.float32)),
        ]
    )
    for key, value in (
        ("PIXTYPE", "HEALPIX"),
        ("ORDERING", "RING"),
        ("NSIDE", NSIDE),
        ("INDXSCHM", "EXPLICIT"),
        ("OBJECT", "PARTIAL"),
    ):
        table.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "partial.fits")
    read = read_sky_map(tmp_path / "partial.fits")
    assert read.observed.sum() == 100 and read.column == "SIGNAL"
    ring_values = hp.reorder(read.values, n2r=True)
    np.testing.assert_allclose(ring_values[pixels], q[pixels], rtol=1e-6)


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        read_sky_map(tmp_path / "missing.fits")
    columns = [fits.Column(name="T", format="E", array=np.zeros(100, dtype=np.float32))]
    table = fits.BinTableHDU.from_columns(columns)
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "odd.fits")
    with pytest.raises(InputError, match="odd.fits"):
        read_sky_map(tmp_path / "odd.fits")
    zeros = read_sky_map(_write(tmp_path / "zeros.fits", np.zeros(12 * NSIDE**2), nest=False))
    with pytest.raises(InputError, match="all zeros"):
        apply_mask(zeros, None)
    with pytest.raises(InputError, match="every pixel is masked"):
        apply_mask(zeros, np.zeros(12 * NSIDE**2, dtype=bool))
    sky = np.ones(12 * NSIDE**2)
    sky[5] = np.inf
    read = read_sky_map(_write(tmp_path / "inf.fits", sky, nest=True))
    with pytest.raises(InputError, match="1 pixels outside the mask are"):
        apply_mask(read, None)
    mask = np.ones(12 * NSIDE**2, dtype=bool)
    mask[5] = False
    assert not apply_mask(read, mask).observed[5]


def test_mask_nside_mismatch_and_regrade(tmp_path: Path) -> None:
    coarse = np.ones(12 * 8**2)
    coarse[0] = 0
    path = _write(tmp_path / "mask.fits", coarse, nest=True)
    with pytest.raises(InputError, match="--regrade-mask"):
        read_mask(path, NSIDE)
    fine = read_mask(path, NSIDE, regrade=True)
    assert fine.size == 12 * NSIDE**2 and (~fine).sum() == 4 and not fine[:4].any()
    finer = np.ones(12 * 32**2)
    finer[5] = 0  # a sub-pixel of NESTED pixel 1 at Nside 16: that pixel is masked
    fine_path = _write(tmp_path / "fine_mask.fits", finer, nest=True)
    degraded = read_mask(fine_path, NSIDE, regrade=True)
    assert (~degraded).sum() == 1 and not degraded[1]


def test_ud_grade_nest_is_healpy_bit_for_bit() -> None:
    values = np.random.default_rng(0).normal(size=12 * 32**2)
    for nside in (16, 8, 4, 2):  # degrading: our own reshape-and-mean
        expected = hp.ud_grade(values, nside, order_in="NESTED", order_out="NESTED")
        np.testing.assert_array_equal(ud_grade_nest(values, nside), expected)
    for nside in (32, 64):  # the same Nside and upgrading call healpy itself: the delegation
        expected = hp.ud_grade(values, nside, order_in="NESTED", order_out="NESTED")
        np.testing.assert_array_equal(ud_grade_nest(values, nside), expected)
    for size, nside in ((12 * 32**2 + 1, 8), (12 * 32**2, 3), (12 * 32**2, 0)):
        with pytest.raises(ValueError, match="cannot regrade"):
            ud_grade_nest(np.zeros(size), nside)


def test_simulator_is_seeded_and_has_the_lcdm_spectrum() -> None:
    nside = 64
    a, b = simulate_cmb(nside, 3, fwhm_arcmin=0, noise_uk_arcmin=0), simulate_cmb(nside, 3)
    np.testing.assert_array_equal(simulate_cmb(nside, 3), b)
    cl = hp.anafast(hp.reorder(a.astype(np.float64), n2r=True), iter=3)
    theory = lcdm_cl(3 * nside - 1)
    # binned by 10, the realized spectrum stays within 4 sigma of cosmic variance
    _, binned_theory, sigma = cosmic_variance_band(theory, per_bin=True)
    assert (np.abs(binned_spectrum(cl)[1] - binned_theory) < 4 * sigma).all()


def test_masks() -> None:
    nside = 64
    cut = galactic_cut(nside, 0, f_sky=0.75)
    assert abs(cut.mean() - 0.75) < 0.01
    theta, _ = hp.pix2ang(nside, np.arange(cut.size), nest=True)
    assert cut[np.abs(np.cos(theta)) > 0.8].all()  # high latitudes observed
    assert not cut[np.abs(np.cos(theta)) < 0.05].any()  # the plane is cut
    sources = point_source_mask(nside, 0, count=50)
    assert 50 <= (~sources).sum() < 50 * 12
    sky = simulate_sky(nside, 0, f_sky=(0.6, 0.9))
    assert 0.55 < sky.observed.mean() < 0.9
    assert (sky.masked[~sky.observed] == 0).all()
