"""The VAE: shapes, presets, the loss, export, and a tiny model that learns from simulated cubes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from convsuite.core_ops.hub import model_config
from convsuite.materials.model import EELSVAE, EELSVAEConfig, kl_divergence, vae_loss


def test_presets_and_shapes() -> None:
    paper = model_config("eels_vae", "paper")
    assert paper.channels == (32, 64, 128, 256) and paper.latent_dim == 40 and paper.beta == 1.2
    net = EELSVAE(model_config("eels_vae", "tiny")).eval()
    x = torch.rand(2, 1, 24, 28, 64)
    out = net(x)
    assert out.logits.shape == x.shape
    assert out.mu.shape == (2, 8, 6, 7, 1) and out.logvar.shape == out.mu.shape
    # far fewer parameters than the reference's ~777M fully connected layers
    assert sum(p.numel() for p in EELSVAE(paper).parameters()) < 5_000_000


def test_latent_cell_sets_the_spatial_strides_only() -> None:
    """cell 2 / 1 drop the last one / both spatial strides: one latent per 2 x 2 pixels or per
    pixel, the energy axis pooled as before, the same parameters (strides only)."""
    import dataclasses

    tiny = model_config("eels_vae", "tiny")
    x = torch.rand(1, 1, 8, 12, 64)
    counts = set()
    for cell in (4, 2, 1):
        net = EELSVAE(dataclasses.replace(tiny, cell=cell)).eval()
        out = net(x)
        assert out.logits.shape == x.shape
        assert out.mu.shape == (1, 8, 8 // cell, 12 // cell, 1)
        counts.add(sum(p.numel() for p in net.parameters()))
    assert len(counts) == 1
    # cards written before the field existed load as the reference's cell and 3 x 3 mean
    new = ("cell", "spatial_mean", "spatial_kernel")
    old = {k: v for k, v in tiny.to_dict().items() if k not in new}
    assert EELSVAEConfig.from_dict(old) == tiny and tiny.cell == 4 and tiny.spatial_mean
    assert tiny.spatial_kernel == 3


def test_spatial_kernel_1_reconstructs_each_pixel_from_its_own_spectrum() -> None:
    """With 1 x 1 spatial kernels (cell 1) a pixel's output does not move when every other
    pixel's spectrum is replaced, and does move when its own is; the reference's 3 x 3 kernels
    spread one pixel's change to its neighbours."""
    import dataclasses

    tiny = model_config("eels_vae", "tiny")
    torch.manual_seed(0)
    x = torch.rand(1, 1, 8, 8, 64)
    others = torch.rand_like(x)
    others[0, 0, 3, 4] = x[0, 0, 3, 4]  # every spectrum but pixel (3, 4) replaced
    own = x.clone()
    own[0, 0, 3, 4] = torch.rand(64)  # only pixel (3, 4) replaced
    spectral = EELSVAE(dataclasses.replace(tiny, cell=1, spatial_kernel=1)).eval()
    with torch.no_grad():
        base, moved, changed = (spectral(t).logits[0, 0] for t in (x, others, own))
    assert torch.equal(base[3, 4], moved[3, 4])
    assert torch.ne(base, changed).any(-1).nonzero().tolist() == [[3, 4]]
    spatial = EELSVAE(dataclasses.replace(tiny, cell=1)).eval()
    with torch.no_grad():
        spread = torch.ne(spatial(x).logits, spatial(own).logits).any(-1)[0, 0]
    assert spread[2:5, 3:6].all()  # the 3 x 3 kernels carry it to the neighbours
    # the same layers with 1 x 1 instead of 3 x 3 spatial taps: fewer parameters
    count = [sum(p.numel() for p in n.parameters()) for n in (spectral, spatial)]
    assert count[0] < count[1]


def test_config_refuses_bad_grid() -> None:
    from convsuite.core_ops.errors import InputError

    with pytest.raises(InputError, match="multiple of 16"):
        EELSVAEConfig.from_dict({"n_energy": 100})
    with pytest.raises(InputError, match="cell must be 1, 2 or 4"):
        EELSVAEConfig.from_dict({"cell": 3})
    with pytest.raises(InputError, match="spatial_kernel must be 1 or 3"):
        EELSVAEConfig.from_dict({"cell": 1, "spatial_kernel": 2})
    with pytest.raises(InputError, match="spatial_kernel 1 needs cell 1"):
        EELSVAEConfig.from_dict({"spatial_kernel": 1})


def test_loss_is_bce_plus_beta_kl() -> None:
    net = EELSVAE(model_config("eels_vae", "tiny")).eval()
    x = torch.rand(1, 1, 8, 8, 64)
    out = net(x)
    loss, nll, kl = vae_loss(out, x, beta=1.2)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, x, reduction="sum") / 64
    assert nll == pytest.approx(float(bce), rel=1e-5)
    dense_kl = 0.5 * (out.mu**2 + out.logvar.exp() - 1 - out.logvar).sum() / 64
    assert kl == pytest.approx(float(dense_kl), rel=1e-5)
    assert float(loss) == pytest.approx(float(bce + 1.2 * dense_kl), rel=1e-5)
    assert kl_divergence(torch.zeros(1, 3, 2, 2, 1), torch.zeros(1, 3, 2, 2, 1)).abs().max() == 0
    trimmed, trimmed_nll, _ = vae_loss(out, x, beta=1.2, trim=0.5)
    assert trimmed_nll < nll  # the worst half left out


def test_tiny_vae_learns_and_flags_shifts(tmp_path) -> None:
    """Trained on bulk cubes of one phase, the tiny VAE's loss falls and its scores find 5 eV
    shifts far better than the untrained network's."""
    from convsuite.materials.data import AnomalySpec, EnergyAxis, simulate_cube
    from convsuite.materials.data.preprocess import prepare
    from convsuite.materials.evaluate import classification
    from convsuite.materials.infer import detect, grid_of
    from convsuite.materials.train import fit_vae

    torch.manual_seed(0)
    config = model_config("eels_vae", "tiny")
    plain = {"second_phase": False, "drift_ev": 0.0, "mixed_valence": False}
    axis = EnergyAxis(650, 0.5, 240)
    cubes = []
    for seed in (10, 11):
        bulk = simulate_cube((48, 48), seed=seed, anomalies=(), energy=axis, **plain)
        cubes.append(prepare(bulk.data, axis, grid_of(EELSVAE(config))).network_input)
    untrained = EELSVAE(config)
    net = EELSVAE(config)
    net.load_state_dict(untrained.state_dict())
    held_out = torch.from_numpy(cubes[0][None, None, -24:, :24])
    # the Bernoulli NLL of [0, 1] targets cannot fall below their entropy: compare the excess
    p = held_out.clamp(1e-6, 1 - 1e-6)
    floor = float(-(p * p.log() + (1 - p) * (1 - p).log()).sum() / (24 * 24))
    with torch.no_grad():
        before = float(vae_loss(untrained.eval()(held_out), held_out)[0])
    _, _, metrics = fit_vae(
        net, cubes, tmp_path, epochs=8, shards_per_epoch=64, batch_size=4, lr=5e-3
    )
    assert metrics["val_loss"] - floor < 0.75 * (before - floor), (before, metrics, floor)
    cube = simulate_cube(
        (32, 32), seed=5, anomalies=[AnomalySpec("shift", 5.0, 40)], energy=axis, **plain
    )
    truth = cube.metadata.Anomalies.mask
    # the network's own reconstruction (the local reference would hide an untrained network)
    options = {"fit": False, "reference": "network", "threshold_method": "otsu"}
    trained = classification(*_scores(detect(cube, net, **options)), truth)
    naive = classification(*_scores(detect(cube, untrained, **options)), truth)
    assert trained["auroc"] > 0.95 and trained["auroc"] > naive["auroc"] + 0.05
    assert trained["f1"] > 0.7


def _scores(found):
    return found.scores, found.mask


def test_exports() -> None:
    """Last in this file: after torch.export, training in the same process ran ~8x slower."""
    net = EELSVAE(model_config("eels_vae", "tiny")).eval()
    x = torch.rand(1, 1, 8, 8, 64)
    program = torch.export.export(net, (x,))
    torch.testing.assert_close(program.module()(x).logits, net(x).logits)


def test_fine_tuning_can_freeze_the_batch_norm_statistics(tmp_path) -> None:
    """``freeze_norms`` (what ``detect``'s fine-tuning uses) trains the weights and leaves the
    batch norms' running statistics as they were; without it they move."""
    from convsuite.materials.train import fit_vae

    torch.manual_seed(0)
    cube = np.random.default_rng(0).random((48, 24, 64)).astype(np.float32)

    def stats(net: EELSVAE) -> list[torch.Tensor]:
        return [
            m.running_mean.clone() for m in net.modules() if isinstance(m, torch.nn.BatchNorm3d)
        ]

    for freeze in (True, False):
        net = EELSVAE(model_config("eels_vae", "tiny"))
        before, weight = stats(net), net.encoder[0].weight.detach().clone()
        fit_vae(
            net,
            [cube],
            tmp_path / str(freeze),
            epochs=1,
            shards_per_epoch=8,
            batch_size=4,
            freeze_norms=freeze,
            progress=None,
        )
        moved = any(not torch.equal(a, b) for a, b in zip(before, stats(net), strict=True))
        assert moved is not freeze
        assert not torch.equal(weight, net.encoder[0].weight)


def test_kl_warm_up_ramps_beta_from_0_and_validates_at_full_beta(tmp_path) -> None:
    """``kl_warmup_epochs`` (the recipe's warm-up): the training KL weight rises linearly from 0
    to the config's beta over the warm-up steps and stays there; validation uses the full beta."""
    import csv

    from convsuite.materials.train import fit_vae

    torch.manual_seed(0)
    cube = np.random.default_rng(0).random((48, 24, 64)).astype(np.float32)
    net = EELSVAE(model_config("eels_vae", "tiny"))
    _, module, _ = fit_vae(
        net,
        [cube],
        tmp_path,
        epochs=3,
        shards_per_epoch=8,
        batch_size=4,
        kl_warmup_epochs=2,
        progress=None,
    )
    assert module.kl_warmup == 4  # 2 epochs of 2 steps
    rows = list(csv.DictReader(open(next(tmp_path.glob("csv/version_*/metrics.csv")))))
    train = [float(r["train_beta"]) for r in rows if r.get("train_beta")]
    val = [float(r["val_beta"]) for r in rows if r.get("val_beta")]
    assert train == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.2, 1.2])
    assert val == pytest.approx([1.2] * 3)
