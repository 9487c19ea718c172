"""The command lines: simulate, inpaint (one and many maps, figures), evaluate; bad input exits 2."""

from __future__ import annotations

from pathlib import Path

import healpy as hp
import numpy as np
import pytest
import torch
from astropy.io import fits
from typer.testing import CliRunner

from convsuite.core_ops.hub import create_model
from convsuite.core_ops.io import save_checkpoint
from convsuite.cosmo.cli import evaluate_app, inpaint_app, simulate_app, train_app

runner = CliRunner()
NSIDE = 16


def _invoke(app, *args: str | Path):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sims")
    result = _invoke(simulate_app, "--n", 2, "--nside", NSIDE, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = create_model("skyrecon", preset="tiny")
    card = net.model_card("test", "none", "tests", inputs={"nside": NSIDE})
    path = tmp_path_factory.mktemp("weights") / "skyrecon.safetensors"
    return save_checkpoint(net.state_dict(), path, card)


def test_simulate_writes_sky_truth_and_mask(sims: Path) -> None:
    names = sorted(p.name for p in sims.glob("*.fits"))
    assert names == [f"{kind}_{i:04d}.fits" for kind in ("mask", "sky", "truth") for i in (0, 1)]
    sky = hp.read_map(sims / "sky_0000.fits")
    mask = hp.read_map(sims / "mask_0000.fits")
    assert sky.size == 12 * NSIDE**2
    assert np.array_equal(sky == hp.UNSEEN, mask == 0) and 0.6 < mask.mean() < 0.8


def test_inpaint_one_map_with_figures(sims: Path, weights: Path, tmp_path: Path) -> None:
    out, plots = tmp_path / "filled.fits", tmp_path / "plots"
    result = _invoke(
        inpaint_app,
        sims / "sky_0000.fits",
        "--weights",
        weights,
        "--out",
        out,
        "--truth",
        sims / "truth_0000.fits",
        "--plots",
        plots,
    )
    assert result.exit_code == 0, result.output
    sky, filled = hp.read_map(sims / "sky_0000.fits"), hp.read_map(out)
    observed = sky != hp.UNSEEN
    np.testing.assert_array_equal(filled[observed], sky[observed])
    assert np.isfinite(filled).all() and (filled != hp.UNSEEN).all()
    with fits.open(out) as hdus:
        assert hdus[1].header["ORDERING"] == "RING" and hdus[1].header["TUNIT1"] == "uK_CMB"
    assert sorted(p.name for p in plots.glob("*.png")) == [
        "sky_0000_maps.png",
        "sky_0000_spectrum.png",
    ]


def test_inpaint_many_maps_into_a_folder(sims: Path, weights: Path, tmp_path: Path) -> None:
    maps = sorted(sims.glob("sky_*.fits"))
    result = _invoke(
        inpaint_app,
        *maps,
        "--mask",
        sims / "mask_0000.fits",
        "--weights",
        weights,
        "--out",
        tmp_path,
        "--mode",
        "realization",
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("*.fits")) == [
        "sky_0000_inpainted.fits",
        "sky_0001_inpainted.fits",
    ]


def test_inpaint_at_another_nside(sims: Path, weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "filled.fits"
    args = (sims / "sky_0001.fits", "--weights", weights, "--out", out, "--nside", NSIDE // 2)
    result = _invoke(inpaint_app, *args)
    assert result.exit_code == 0, result.output
    sky, filled = hp.read_map(sims / "sky_0001.fits"), hp.read_map(out)
    truth = hp.read_map(sims / "truth_0001.fits")
    observed = sky != hp.UNSEEN
    assert filled.size == sky.size and np.isfinite(filled).all()
    np.testing.assert_array_equal(filled[observed], sky[observed])
    holes = ~observed
    assert np.mean((filled - truth)[holes] ** 2) < 0.7 * np.mean(truth[holes] ** 2)
    # the Nside 8 fill comes back harmonically, not as ud_grade's constant 2 x 2 blocks
    nested = hp.reorder(np.where(observed, np.nan, filled), r2n=True).reshape(-1, 4)
    blocks = nested[np.isfinite(nested).all(1)]
    assert len(blocks) > 0 and not np.allclose(blocks.max(1), blocks.min(1))


def test_rim_depth(sims: Path, weights: Path, tmp_path: Path) -> None:
    out = tmp_path / "filled.fits"
    bare = _invoke(
        inpaint_app, sims / "sky_0001.fits", "--weights", weights, "--out", out, "--rim-depth", 0
    )
    assert bare.exit_code == 0, bare.output
    without_rim = hp.read_map(out)
    deep = _invoke(
        inpaint_app, sims / "sky_0001.fits", "--weights", weights, "--out", out, "--rim-depth", 9
    )
    assert deep.exit_code == 2  # beyond the filter's data radius: a usage error, output untouched
    np.testing.assert_array_equal(hp.read_map(out), without_rim)
    assert (
        _invoke(inpaint_app, sims / "sky_0001.fits", "--weights", weights, "--out", out).exit_code
        == 0
    )
    assert not np.array_equal(hp.read_map(out), without_rim)  # the rim changed the fill


def test_bad_inputs_exit_2_with_one_line_and_no_output(
    sims: Path, weights: Path, tmp_path: Path
) -> None:
    table = fits.BinTableHDU.from_columns([fits.Column("T", "E", array=np.ones(100))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(tmp_path / "bad.fits")  # 100: not 12 Nside^2
    coarse_mask = tmp_path / "coarse_mask.fits"
    hp.write_map(str(coarse_mask), np.ones(12 * 8**2))
    empty_mask = tmp_path / "empty_mask.fits"
    hp.write_map(str(empty_mask), np.zeros(12 * NSIDE**2))
    cases = [
        ((tmp_path / "bad.fits",), "bad.fits"),
        ((sims / "sky_0000.fits", "--mask", coarse_mask), "--regrade-mask"),
        ((sims / "sky_0000.fits", "--mask", empty_mask), "every pixel is masked"),
    ]
    for args, message in cases:
        out = tmp_path / "result.fits"
        result = runner.invoke(
            inpaint_app, [*map(str, args), "--weights", str(weights), "--out", str(out)]
        )
        assert result.exit_code == 2, result.output
        assert message in result.output and len(result.output.strip().splitlines()) == 1
        assert not out.exists()


def test_evaluate_prints_every_method(weights: Path) -> None:
    result = _invoke(
        evaluate_app,
        "--nside",
        NSIDE,
        "--n",
        1,
        "--weights",
        weights,
        "--methods",
        "skyrecon,diffusive,wiener",
    )
    assert result.exit_code == 0, result.output
    for name in ("skyrecon", "diffusive", "wiener", "mse_over_wiener", "cv_fraction"):
        assert name in result.output


def test_every_command_has_help_with_an_example() -> None:
    for app in (inpaint_app, simulate_app, train_app, evaluate_app):
        result = runner.invoke(app, ["--help"])
        assert result.exit_code == 0 and "Example:" in result.output
