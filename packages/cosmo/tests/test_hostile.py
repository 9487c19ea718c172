"""Hostile and clumsy input: each case exits 2 with one stderr line, leaves the inputs untouched and
writes no output (or gives a correct result), within 2.5 GB.

Files are written with healpy and astropy. Cases where astropy's own logger or the memory peak is
at stake run ``cosmo-inpaint`` in a subprocess; the rest run in-process through core-ops' ``run``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import healpy as hp
import numpy as np
import pytest
import torch
from astropy.io import fits

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import create_model
from convsuite.core_ops.io import save_checkpoint
from convsuite.cosmo.cli import inpaint_app
from convsuite.cosmo.data import read_mask, read_sky_map, simulate_sky
from convsuite.cosmo.infer import inpaint

NSIDE = 16
GB = 2**30


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="tiny")
    card = net.model_card("test", "none", "tests", inputs={"nside": NSIDE})
    return save_checkpoint(
        net.state_dict(), tmp_path_factory.mktemp("w") / "tiny.safetensors", card
    )


def _sky_file(path: Path, seed: int = 0, change=None) -> Path:
    """A NESTED map with UNSEEN holes (uK_CMB); ``change(values, observed)`` edits it first."""
    sky = simulate_sky(NSIDE, seed)
    values = np.where(sky.observed, sky.truth, hp.UNSEEN).astype(np.float64)
    if change is not None:
        change(values, sky.observed)
    path.parent.mkdir(parents=True, exist_ok=True)
    hp.write_map(str(path), values, nest=True, column_units="uK_CMB", dtype=np.float64)
    return path


def _partial_file(path: Path, nside: int, count: int, largest: int | None = None) -> Path:
    """An explicit-index (partial-sky) file: ``count`` pixels of an Nside ``nside`` sky."""
    pixels = (np.arange(count, dtype=np.int64) * 7919) % (12 * nside**2)
    if largest is not None:
        pixels[-1] = largest
    values = np.random.default_rng(0).normal(0, 100, count).astype(np.float32)
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="PIXEL", format="K", array=pixels),
            fits.Column(name="SIGNAL", format="E", array=values),
        ]
    )
    cards = {"PIXTYPE": "HEALPIX", "ORDERING": "NESTED", "NSIDE": nside, "INDXSCHM": "EXPLICIT"}
    for key, value in cards.items():
        table.header[key] = value
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    return path


def _refused(result: tuple[int, str, str], *words: str) -> None:
    """Exit 2 with exactly one error line naming ``words``."""
    status, _, err = result
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    for word in words:
        assert word in lines[0], lines[0]


def _script(*args: str | Path) -> tuple[int, str, int]:
    """``cosmo-inpaint ARGS`` in a fresh process: (status, stderr, peak resident memory in bytes)."""
    runner = (
        "import resource, subprocess, sys\n"
        "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stdout.write(done.stderr)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
        "sys.stderr.write(f'{done.returncode} {peak}')\n"
    )
    script = Path(sys.executable).with_name("cosmo-inpaint")
    done = subprocess.run(
        [sys.executable, "-c", runner, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    status, peak = map(int, done.stderr.split())
    return status, done.stdout, peak


@pytest.mark.parametrize("nside", [4096, 8192])
def test_a_small_partial_file_claiming_a_huge_nside_is_refused_from_its_header(
    tmp_path: Path, nside: int
) -> None:
    """A 14 KB explicit-index file claiming Nside 4096 took 4.5 GB before being refused (8192:
    6.5 GB); now its header is checked against the memory budget before anything is decoded."""
    path = _partial_file(tmp_path / "claim.fits", nside, 500)
    assert path.stat().st_size < 20_000
    out = tmp_path / "out.fits"
    status, err, peak = _script(path, "--out", out)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert f"Nside {nside} map would take" in lines[0] and "limit is 4.0 GiB" in lines[0]
    assert peak < 2.5 * GB and not out.exists()


def test_partial_files_need_their_pixels_on_the_sphere_and_enough_of_them(tmp_path: Path) -> None:
    few = _partial_file(tmp_path / "few.fits", 2048, 500)  # 1e-5 of the sky, within the budget
    with pytest.raises(InputError, match=r"holds 500 of the 50331648 pixels .*\(at least 1%\)"):
        read_sky_map(few)
    off = _partial_file(tmp_path / "off.fits", NSIDE, 100, largest=12 * NSIDE**2 + 5)
    with pytest.raises(InputError, match=r"pixel index 3077 is not on an Nside 16 sky"):
        read_sky_map(off)
    fine = read_sky_map(_partial_file(tmp_path / "fine.fits", NSIDE, 100))
    assert fine.observed.sum() == 100


def test_a_cut_short_file_gives_one_line(tmp_path: Path) -> None:
    """astropy warns through its own logger ("WARNING: File may have been truncated...", three
    lines before); the reader folds its warnings into the one error line."""
    whole = _sky_file(tmp_path / "whole.fits").read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "out.fits"
    status, err, _ = _script(cut, "--out", out)
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert "cut.fits: is cut short" in lines[0] and "truncated" in lines[0]
    assert cut.read_bytes() == whole[: len(whole) // 2] and not out.exists()


def test_out_naming_an_input_is_refused_and_the_input_untouched(
    tmp_path: Path, weights: Path, invoke
) -> None:
    sky = _sky_file(tmp_path / "sky.fits")
    before = sky.read_bytes()
    _refused(invoke(inpaint_app, sky, "--weights", weights, "--out", sky), "is also an input")
    spelled = tmp_path / "." / "sky.fits"
    _refused(invoke(inpaint_app, sky, "--weights", weights, "--out", spelled), "is also an input")
    # an input named like another input's default output
    other = _sky_file(tmp_path / "sky_inpainted.fits", seed=1)
    other_before = other.read_bytes()
    _refused(invoke(inpaint_app, sky, other, "--weights", weights), "sky_inpainted.fits")
    assert sky.read_bytes() == before and other.read_bytes() == other_before
    mask = tmp_path / "mask.fits"
    hp.write_map(str(mask), np.ones(12 * NSIDE**2), nest=True)
    args = (sky, "--mask", mask, "--weights", weights, "--out", mask)
    _refused(invoke(inpaint_app, *args), "mask.fits", "is also an input")


def test_same_named_maps_in_different_folders_keep_both_outputs(
    tmp_path: Path, weights: Path, invoke
) -> None:
    """Two ``map.fits`` in different folders wrote one output over the other, exit 0."""
    first = _sky_file(tmp_path / "a" / "map.fits", seed=0)
    second = _sky_file(tmp_path / "b" / "map.fits", seed=1)
    out, plots = tmp_path / "out", tmp_path / "plots"
    args = (first, second, "--weights", weights, "--out", out, "--plots", plots)
    status, _, err = invoke(inpaint_app, *args)
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["a_map_inpainted.fits", "b_map_inpainted.fits"]
    assert len(list(plots.glob("*.png"))) == 4
    for source, result in ((first, "a_map_inpainted.fits"), (second, "b_map_inpainted.fits")):
        given, filled = hp.read_map(source, nest=True), hp.read_map(out / result, nest=True)
        observed = given != hp.UNSEEN
        np.testing.assert_array_equal(filled[observed], given[observed])
    _refused(invoke(inpaint_app, first, first, "--weights", weights), "is given twice")


def test_a_non_physical_pixel_is_refused_unless_masked(
    tmp_path: Path, weights: Path, invoke
) -> None:
    """A pixel of 1e30 filled the hole beside it with 2e29 muK; observed |T| above 100 mK is
    refused, and the same pixel under the mask is simply masked."""

    def flag(values: np.ndarray, observed: np.ndarray) -> None:
        values[np.flatnonzero(observed)[40]] = 1e30

    sky = _sky_file(tmp_path / "flagged.fits", change=flag)
    out = tmp_path / "out.fits"
    _refused(
        invoke(inpaint_app, sky, "--weights", weights, "--out", out),
        "flagged.fits",
        "1 observed pixels have |T| above 100 mK",
    )
    assert not out.exists()
    values = hp.read_map(sky, nest=True)
    covering = (values != hp.UNSEEN) & (np.abs(values) < 1e5)  # masks the flagged pixel
    mask = tmp_path / "mask.fits"
    hp.write_map(str(mask), covering.astype(np.float32), nest=True)
    status, _, err = invoke(inpaint_app, sky, "--mask", mask, "--weights", weights, "--out", out)
    assert status == 0, err
    filled = hp.read_map(out, nest=True)
    assert np.abs(filled).max() < 1e3 and np.array_equal(filled[covering], values[covering])
    with pytest.raises(InputError, match="above 100 mK"):
        inpaint(values, nest=True, weights=weights)


def test_an_infinite_mask_pixel_is_refused_before_the_threshold(
    tmp_path: Path, weights: Path, invoke
) -> None:
    """+inf in a mask counted as observed (above 0.5) in the Python API; finiteness comes first."""
    sky = simulate_sky(NSIDE, 0)
    mask = sky.observed.astype(np.float64)
    hole = np.flatnonzero(~sky.observed)[3]
    mask[hole] = np.inf
    path = tmp_path / "mask.fits"
    hp.write_map(str(path), mask, nest=True, dtype=np.float64)
    with pytest.raises(InputError, match="1 mask pixels are"):
        read_mask(path, NSIDE)
    map_file = _sky_file(tmp_path / "sky.fits")
    out = tmp_path / "out.fits"
    args = (map_file, "--mask", path, "--weights", weights, "--out", out)
    _refused(invoke(inpaint_app, *args), "mask.fits", "+-inf")
    assert not out.exists()
    data = np.where(sky.observed, sky.truth, 0.0)
    with pytest.raises(InputError, match=r"mask: \+-inf values"):
        inpaint(data, mask, nest=True, weights=weights)
    mask[hole] = np.nan  # no data: masked, as in a FITS mask
    filled = inpaint(data, mask, nest=True, weights=weights)
    assert filled[hole] != 0.0  # filled, not passed through as an observed 0


def test_unwritable_outputs_give_one_line(tmp_path: Path, weights: Path, invoke) -> None:
    sky = _sky_file(tmp_path / "sky.fits")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    _refused(invoke(inpaint_app, sky, "--weights", weights, "--out", blocker / "x.fits"), "blocker")
    second = _sky_file(tmp_path / "two" / "sky.fits", seed=2)
    _refused(invoke(inpaint_app, sky, second, "--weights", weights, "--out", blocker), "is a file")
    _refused(invoke(inpaint_app, sky, "--weights", weights, "--plots", blocker), "--plots")
    assert blocker.read_text() == "a file where a folder is needed"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "sky.fits", "two"]


def test_a_broken_model_card_gives_one_line(tmp_path: Path, weights: Path, invoke) -> None:
    sky = _sky_file(tmp_path / "sky.fits")
    for name, text in (
        ("bad_json", "{not json"),
        (
            "bad_type",
            json.dumps(
                {
                    **json.loads(weights.with_suffix(".json").read_text()),
                    "config": {"widths": "wide"},
                }
            ),
        ),
    ):
        copy = tmp_path / f"{name}.safetensors"
        shutil.copy(weights, copy)
        copy.with_suffix(".json").write_text(text)
        out = tmp_path / "out.fits"
        _refused(invoke(inpaint_app, sky, "--weights", copy, "--out", out), f"{name}.json")
        assert not out.exists()
    _refused(invoke(inpaint_app, sky, "--weights", "skyrecon_nside32"), "no bundled checkpoint")


def test_unreadable_input_and_usage_errors_give_one_line(
    tmp_path: Path, weights: Path, invoke
) -> None:
    text = tmp_path / "notes.fits"
    text.write_text("not a FITS file\n" * 100)
    _refused(invoke(inpaint_app, text, "--weights", weights), "notes.fits", "not a readable FITS")
    _refused(invoke(inpaint_app, tmp_path / "missing.fits"), "missing.fits", "no such file")
    table = fits.BinTableHDU.from_columns([fits.Column("T", "E", array=np.ones(100))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "odd.fits")
    _refused(invoke(inpaint_app, tmp_path / "odd.fits"), "100 pixels is not a HEALPix map")
    sky = _sky_file(tmp_path / "sky.fits")
    _refused(invoke(inpaint_app, sky, "--field", -1), "--field")
    _refused(invoke(inpaint_app, sky, "--field", 3), "no field 3")
    _refused(invoke(inpaint_app, sky, "--mode", "best"), "--mode")
    _refused(invoke(inpaint_app, sky, "--no-such-option"), "--no-such-option")
    _refused(invoke(inpaint_app), "maps")  # no usage box, one line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.fits", "odd.fits", "sky.fits"]


def test_masks_of_another_nside_or_masking_everything_give_one_line(
    tmp_path: Path, weights: Path, invoke
) -> None:
    sky = _sky_file(tmp_path / "sky.fits")
    coarse, empty = tmp_path / "coarse.fits", tmp_path / "empty.fits"
    hp.write_map(str(coarse), np.ones(12 * 8**2), nest=True)
    hp.write_map(str(empty), np.zeros(12 * NSIDE**2), nest=True)
    out = tmp_path / "out.fits"
    base = ("--weights", weights, "--out", out)
    _refused(invoke(inpaint_app, sky, "--mask", coarse, *base), "coarse.fits", "--regrade-mask")
    _refused(invoke(inpaint_app, sky, "--mask", empty, *base), "every pixel is masked")
    assert not out.exists()
    status, _, err = invoke(inpaint_app, sky, "--mask", coarse, "--regrade-mask", *base)
    assert status == 0 and out.exists(), err
