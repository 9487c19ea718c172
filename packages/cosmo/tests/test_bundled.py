"""The bundled checkpoint, the demo and the quickstart notebook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import create_model
from convsuite.cosmo import SkyReconNet, diffusive_inpaint, simulate_sky
from convsuite.cosmo.demo import run as run_demo
from convsuite.cosmo.evaluation import score
from convsuite.cosmo.infer import bundled_checkpoints, inpaint_nest, pretrained_network


def test_every_bundled_checkpoint_loads_by_name_and_serves_the_nside_of_its_card() -> None:
    bundled = bundled_checkpoints()
    assert bundled == {n: f"skyrecon_nside{n}" for n in (64, 128, 256)}
    for nside, name in bundled.items():
        net = SkyReconNet.from_pretrained(name)
        assert not net.training and net.card is not None and net.card.card_version == 2
        assert net.card.inputs["nside"] == nside and "nside" not in net.card.metrics
        assert net.card.inputs["unit"] == net.card.outputs["unit"] == "uK_CMB"
        assert net.config.levels(nside) == len(net.config.widths) - (256 // nside).bit_length() + 1
    assert SkyReconNet.from_pretrained().card.inputs["nside"] == 64  # the default weights
    by_registry = create_model("skyrecon", pretrained="skyrecon_nside128")
    assert by_registry.card.inputs["nside"] == 128
    with pytest.raises(InputError, match="bundled: skyrecon_nside128, skyrecon_nside256"):
        SkyReconNet.from_pretrained("skyrecon_nside32")
    with pytest.raises(InputError, match=r"Nside 32: no bundled SkyReconNet checkpoint"):
        pretrained_network(32)


def test_bundled_pipeline_beats_the_diffusive_fill_on_a_held_out_sky() -> None:
    """The bundled Nside 64 network with its rim, against diffusive inpainting of the same held-out
    sky (seed 5; training used seeds from 10^6): 5.5% lower hole MSE and higher SSIM there."""
    nside = min(bundled_checkpoints())
    net = pretrained_network(nside)
    sky = simulate_sky(nside, 5, f_sky=0.75)
    filled = inpaint_nest(net, sky.masked, sky.observed)
    np.testing.assert_array_equal(filled[sky.observed], sky.masked[sky.observed])
    ours, diffusive = score(filled, sky), score(diffusive_inpaint(sky.masked, sky.observed), sky)
    assert ours["mse"] < 0.97 * diffusive["mse"] and ours["ssim"] > diffusive["ssim"] + 0.02
    # the realization mode puts power back into the holes
    realization = inpaint_nest(net, sky.masked, sky.observed, "realization", seed=1)
    hole_power = np.var(realization[~sky.observed]) / np.var(sky.truth[~sky.observed])
    assert hole_power > np.var(filled[~sky.observed]) / np.var(sky.truth[~sky.observed])
    # the local Wiener filter's rim: lower error, and no hole-edge kinks in the spectrum
    bare = inpaint_nest(net, sky.masked, sky.observed, rim_depth=0)
    bare_realization = inpaint_nest(net, sky.masked, sky.observed, "realization", 1, rim_depth=0)
    assert ours["mse"] < score(bare, sky)["mse"]
    assert score(realization, sky)["cv_fraction"] >= max(
        0.9, score(bare_realization, sky)["cv_fraction"] + 0.1
    )


def test_demo_beats_diffusion_and_writes_its_figures(tmp_path: Path) -> None:
    result = run_demo(tmp_path)
    assert [p.name for p in result.figures] == ["cosmo_maps.png", "cosmo_spectra.png"]
    for path, size in zip(result.figures, [(1980, 408), (840, 624)], strict=True):
        with Image.open(path) as png:  # 16.5 x 3.4 and 7 x 5.2 inches at 120 dpi
            assert png.format == "PNG" and png.size == size
            assert len(png.getcolors(maxcolors=1 << 16) or range(1 << 16)) > 100  # not blank
    summary = result.summary
    assert summary["nside"] == 128 and 0.7 < summary["f_sky"] < 0.8
    assert summary["SkyReconNet"]["mse"] < 0.97 * summary["diffusive"]["mse"]
    assert summary["SkyReconNet realization"]["cv_fraction"] >= 0.9
