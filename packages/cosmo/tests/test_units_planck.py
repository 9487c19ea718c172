"""Real maps: units read from TUNIT (K_CMB, mK, muK give the same sky), unitless maps checked,
Planck PR3-layout files (columns by name, the mask file's columns, the others copied), a map whose
Nside has no checkpoint run through the nearest one."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from astropy.io import fits

from convsuite.core_ops.io import InputError
from convsuite.cosmo.cli import inpaint_app
from convsuite.cosmo.data import TARGET_PRIORS, SkyMap, simulate_sky, write_sky_map
from convsuite.cosmo.data.planck import PLANCK_COLUMNS, write_planck_layout
from convsuite.cosmo.data.units import uk_per_unit


@pytest.mark.parametrize(
    ("unit", "factor"),
    [
        ("K_CMB", 1e6),
        ("Kcmb", 1e6),
        ("KCMB", 1e6),
        ("K", 1e6),
        ("mK_CMB", 1e3),
        ("mK", 1e3),
        ("uK_CMB", 1.0),
        ("uK", 1.0),
        ("muK", 1.0),
        ("μK", 1.0),
        ("µK_CMB", 1.0),
        ("microK", 1.0),
        ("K (CMB)", 1e6),
    ],
)
def test_unit_spellings(unit: str, factor: float) -> None:
    assert uk_per_unit(unit) == pytest.approx(factor, rel=1e-12)


def test_units_that_are_not_thermodynamic_temperatures_are_refused() -> None:
    with pytest.raises(InputError, match="Rayleigh-Jeans"):
        uk_per_unit("K_RJ")
    with pytest.raises(InputError, match="not a CMB temperature"):
        uk_per_unit("MJy/sr")


def _write(sky, path, unit: str, factor: float, column: str = "TEMPERATURE") -> None:
    values = np.where(sky.observed, sky.truth / factor, hp.UNSEEN).astype(np.float32)
    write_sky_map(SkyMap(values, sky.observed, "RING", unit, column, [], "sim"), path)


def test_the_same_sky_in_k_mk_and_uk_gives_the_same_output(tmp_path, invoke) -> None:
    """Nside 32 (no checkpoint: the network runs at the nearest, 64, and says so)."""
    sky = simulate_sky(32, 2)
    outputs = []
    for unit, factor in (("K_CMB", 1e6), ("mK_CMB", 1e3), ("uK_CMB", 1.0)):
        _write(sky, tmp_path / f"{factor:g}.fits", unit, factor)
        out = tmp_path / f"out_{factor:g}.fits"
        status, _, err = invoke(inpaint_app, tmp_path / f"{factor:g}.fits", "--out", out)
        assert status == 0, err
        assert "nearest, Nside 64" in err and f"unit {unit}" in err
        with fits.open(out) as hdus:
            assert hdus[1].columns[0].unit == unit
        outputs.append(hp.read_map(out) * factor)
    scale = np.std(outputs[2])
    for other in outputs[:2]:  # float32 rounding of the input, through the measured prior
        assert np.abs(other - outputs[2]).max() < 1e-4 * scale
    holes = ~hp.reorder(sky.observed, n2r=True)
    assert np.std(outputs[2][holes]) > 0.2 * np.std(sky.truth)  # filled, not zeros


def test_a_unitless_map_of_implausible_rms_names_unit(tmp_path, invoke) -> None:
    sky = simulate_sky(32, 2)
    _write(sky, tmp_path / "k.fits", "", 1e6)  # K_CMB values, no TUNIT
    status, _, err = invoke(inpaint_app, tmp_path / "k.fits", "--out", tmp_path / "o.fits")
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "--unit" in lines[0] and "RMS" in lines[0], err
    assert not (tmp_path / "o.fits").exists()
    status, _, err = invoke(
        inpaint_app, tmp_path / "k.fits", "--out", tmp_path / "o.fits", "--unit", "K_CMB"
    )
    assert status == 0, err
    assert hp.read_map(tmp_path / "o.fits").std() == pytest.approx(sky.truth.std() / 1e6, rel=0.3)
    status, _, err = invoke(inpaint_app, tmp_path / "k.fits", "--unit", "MJy/sr")
    assert status == 2 and "--unit" in err


def test_a_map_s_own_mask_column_and_the_prior_options(tmp_path, invoke) -> None:
    sky = simulate_sky(32, 3, prior=TARGET_PRIORS[0])
    write_planck_layout(sky, tmp_path / "p.fits")
    cl = tmp_path / "cl.txt"
    np.savetxt(cl, np.column_stack([np.arange(96), TARGET_PRIORS[0].sky_cl(95) / 1e12]))
    for extra in ([], ["--cl", cl, "--beam-fwhm", 30, "--noise-uk-arcmin", 5], ["--prior", "lcdm"]):
        out = tmp_path / "o.fits"
        args = ("--field", "I_STOKES", "--mask-field", "TMASK", "--out", out, *extra)
        status, _, err = invoke(inpaint_app, tmp_path / "p.fits", *args)
        assert status == 0, err
        assert ("cl.txt, beam 30'" in err) if extra and extra[0] == "--cl" else True
    status, _, err = invoke(inpaint_app, tmp_path / "p.fits", "--mask-field", "NOPE")
    assert status == 2 and "no column 'NOPE'" in err


@pytest.mark.slow
def test_planck_layout_file_through_the_whole_cli(tmp_path, invoke) -> None:
    """Nside 256, K_CMB, NESTED, I/Q/U/TMASK/PMASK, a separate mask file of three columns: the
    chosen column inpainted (realization), the others and the observed pixels unchanged."""
    sky = simulate_sky(256, 7, prior=TARGET_PRIORS[0])
    write_planck_layout(sky, tmp_path / "map.fits", tmp_path / "masks.fits")
    out, plots = tmp_path / "out.fits", tmp_path / "plots"
    args = ["--field", "I_STOKES", "--mask", tmp_path / "masks.fits", "--mask-field", "CMB_COMMON"]
    args += ["--mode", "realization", "--out", out, "--plots", plots]
    status, _, err = invoke(inpaint_app, tmp_path / "map.fits", *args)
    assert status == 0, err
    assert "unit K_CMB" in err and "prior measured" in err
    with fits.open(tmp_path / "map.fits") as before, fits.open(out) as after:
        assert after[1].columns.names == list(PLANCK_COLUMNS)
        assert after[1].header["ORDERING"] == "NESTED" and after[1].columns[0].unit == "K_CMB"
        for name in PLANCK_COLUMNS[1:]:
            np.testing.assert_array_equal(after[1].data[name], before[1].data[name])
        filled = np.asarray(after[1].data["I_STOKES"], dtype=np.float64).ravel()
        np.testing.assert_array_equal(
            filled[sky.observed], before[1].data["I_STOKES"].ravel()[sky.observed]
        )
    holes = ~sky.observed
    power = np.var(filled[holes] * 1e6) / np.var(sky.truth[holes])
    assert 0.8 < power < 1.2  # a realization: the right power in the holes
    assert {p.name for p in plots.iterdir()} == {"map_maps.png", "map_spectrum.png"}


def test_a_column_is_written_in_place_block_by_block(tmp_path, monkeypatch) -> None:
    """A several-column file is written as a copy with one column overwritten through memory maps
    of a few rows at a time (Nside 64: 48 rows of 1024 pixels, here 5 rows a map): the column
    holds the new values exactly, the other columns and the history card are there."""
    from convsuite.cosmo.data import fits_io, read_sky_map

    monkeypatch.setattr(fits_io, "_WRITE_ROWS", 5)
    sky = simulate_sky(64, 2)
    write_planck_layout(sky, tmp_path / "map.fits", tmp_path / "masks.fits")
    read = read_sky_map(tmp_path / "map.fits", "I_STOKES")
    new = np.arange(read.values.size, dtype=np.float32) * np.float32(1e-7)
    write_sky_map(read.replace(values=new), tmp_path / "out.fits", history="block test")
    with fits.open(tmp_path / "map.fits") as before, fits.open(tmp_path / "out.fits") as after:
        np.testing.assert_array_equal(np.ravel(after[1].data["I_STOKES"]), new)
        for name in PLANCK_COLUMNS[1:]:
            np.testing.assert_array_equal(after[1].data[name], before[1].data[name])
        assert "block test" in str(after[1].header["HISTORY"])
