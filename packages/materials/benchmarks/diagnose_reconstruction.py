"""Where the VAE's reconstruction error on normal pixels comes from, and what it costs the score.

Measures, on the evaluation's cubes (64 x 64, seeds as ``eels-anomaly evaluate``: 0.5 and 1 eV
single-pixel shifts at 100000 / 100001, anomaly-free cubes 200000-200003), no fine-tuning:

1. the normal pixels' error (median 1 - Pearson r in 690-730 eV, own spectrum vs reconstruction)
   on the anomaly-free cube by phase, phase boundary, thickness quartile, next to the floors
   (own vs the network's 3 x 3-averaged input; own vs PCA-4 of the cube); the mean residual
   (input - reconstruction) per energy band and the share of its power that is smooth in energy
   (over ~2 eV: background and edge-jump mismatch, not fine structure); KL per pixel and active
   latent dimensions;
2. decoding the posterior mean ``z = mu`` (what ``detect`` does) against the mean of
   ``--samples`` decoded posterior samples;
3. per decoding and for two references a network could at best approach (the network's input
   itself, i.e. a perfect autoencoder of the paper's smoothed input; PCA-4 of the pixels' own
   spectra): AUROC, F1 at the best threshold (an oracle) and at the null threshold with the
   local and with the plain reference (the paper's score), and on the anomaly-free cubes the
   robust z of the normal pixels' log-scores (99.9% quantile; a Gaussian's is 3.09) and the
   share flagged (on phase boundaries).

Run: ``OMP_NUM_THREADS=1 .venv/bin/python packages/materials/benchmarks/diagnose_reconstruction.py
[--weights FILE] [--samples 8]`` (~1.5 min on one thread, loaded).
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
import torch
from scipy.ndimage import binary_dilation, gaussian_filter1d

from convsuite.materials.baselines import pca_reconstruction
from convsuite.materials.data.io import energy_axis
from convsuite.materials.data.preprocess import EnergyGrid, prepare
from convsuite.materials.data.simulate import AnomalySpec, simulate_cube
from convsuite.materials.evaluate import _NAMES, SHIFTS_EV, classification, oracle_f1
from convsuite.materials.infer import grid_of, load_network, reconstruct
from convsuite.materials.model import EELSVAE, kl_divergence
from convsuite.materials.scoring import (
    pearson_distance,
    reference_threshold,
    robust_z,
    score_pixels,
    window_channels,
)

logging.getLogger("hyperspy").setLevel(logging.ERROR)
# evaluate's seed scheme (seed 0): shifted cubes 100_000 + k, the normal-only cube 200_000 (and
# three more after it here)
CUBES: dict[str, tuple[int, float | None]] = {
    f"{shift:g} eV": (100_000 + k, shift) for k, shift in enumerate(SHIFTS_EV[:2])
} | {f"normal {s}": (s, None) for s in range(200_000, 200_004)}
SMOOTH_EV = 2.0  # the residual's smooth part: Gaussian sigma in energy
BANDS_EV = ((670, 700), (700, 712), (712, 720), (720, 730), (730, 750))


def cube_of(
    seed: int, shift: float | None, grid: EnergyGrid
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(own, network input, truth mask, phase map, thickness map) of a simulated 64 x 64 cube."""
    anomalies = [AnomalySpec("shift", shift, 500)] if shift else ()
    cube = simulate_cube((64, 64), seed=seed, anomalies=anomalies)
    p = prepare(cube.data, energy_axis(cube), grid)
    sim = cube.metadata.Simulation
    truth = np.asarray(cube.metadata.Anomalies.mask, bool)
    return p.own, p.network_input, truth, np.asarray(sim.phase), np.asarray(sim.thickness)


def reconstructions(
    net: EELSVAE, x: np.ndarray, samples: int
) -> tuple[dict[str, np.ndarray], float, int]:
    """{decoding: (y, x, E) reconstruction}, KL nats per pixel, active latent dimensions."""
    torch.manual_seed(0)
    out = {"z = mu": 1.0 / (1.0 + np.exp(-reconstruct(net, x)))}  # the detector's own decoding
    with torch.no_grad():
        mu, logvar = net.encode(torch.from_numpy(x)[None, None])
        draws = [
            torch.sigmoid(net.decode(mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)))
            for _ in range(samples)
        ]
        out[f"mean of {samples} samples"] = torch.stack(draws).mean(0)[0, 0].numpy()
        per_dim = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)[0, :, :, :, 0]
        kl = float(kl_divergence(mu, logvar).sum()) / (x.shape[0] * x.shape[1])
    return out, kl, int((per_dim.mean((1, 2)) > 0.05).sum())


def boundary(phase: np.ndarray) -> np.ndarray:
    """Pixels within one pixel of a phase boundary."""
    edges = np.zeros(phase.shape, bool)
    edges[1:] |= phase[1:] != phase[:-1]
    edges[:, 1:] |= phase[:, 1:] != phase[:, :-1]
    return binary_dilation(edges)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="checkpoint (default: bundled)")
    parser.add_argument("--samples", type=int, default=8, help="posterior samples to average")
    args = parser.parse_args()
    if args.samples < 1:
        parser.error(f"--samples must be >= 1, got {args.samples}")
    torch.set_num_threads(1)
    net = load_network(args.weights).eval()
    grid = grid_of(net)
    ch = window_channels(grid.values, (690.0, 730.0))
    smooth_channels = SMOOTH_EV / float(grid.values[1] - grid.values[0])
    cubes = {name: cube_of(seed, shift, grid) for name, (seed, shift) in CUBES.items()}
    decoded = {name: reconstructions(net, cube[1], args.samples) for name, cube in cubes.items()}

    own, x, _, phase, thickness = cubes["normal 200000"]
    recs, kl, active = decoded["normal 200000"]
    rec = recs["z = mu"]
    error = pearson_distance(own, rec, ch)
    print(f"1. anomaly-free cube 200000: KL {kl:.2f} nats/pixel, {active} active dims")
    print(
        f"   median 1 - r own vs reconstruction {np.median(error):.4f}; floors: own vs input "
        f"{np.median(pearson_distance(own, x, ch)):.4f}, own vs PCA-4 "
        f"{np.median(pearson_distance(own, pca_reconstruction(own, 4), ch)):.4f}"
    )
    edge = boundary(phase)
    parts = [f"phase {k} {np.median(error[(phase == k) & ~edge]):.4f}" for k in np.unique(phase)]
    parts.append(f"boundary ({edge.sum()} px) {np.median(error[edge]):.4f}")
    quartiles = np.quantile(thickness, [0, 0.25, 0.5, 0.75, 1])
    for a, b in zip(quartiles[:-1], quartiles[1:], strict=True):
        parts.append(
            f"t/l {a:.2f}-{b:.2f} {np.median(error[(thickness >= a) & (thickness <= b)]):.4f}"
        )
    print("   by region: " + ", ".join(parts))
    residual = (x - rec).mean((0, 1))
    print(
        "   mean residual input - reconstruction (scaled units; mean input): "
        + ", ".join(
            f"{a}-{b} eV {residual[(grid.values >= a) & (grid.values < b)].mean():+.4f} "
            f"({x[..., (grid.values >= a) & (grid.values < b)].mean():.2f})"
            for a, b in BANDS_EV
        )
    )
    smooth = gaussian_filter1d(x - rec, smooth_channels, axis=-1)[..., ch]
    share = float((smooth**2).sum() / ((x - rec)[..., ch] ** 2).sum())
    print(
        f"   share of the residual's power in 690-730 eV that is smooth in energy "
        f"(Gaussian sigma {SMOOTH_EV:g} eV, {smooth_channels:.2f} channels): {share:.2f}"
    )

    print(
        "2./3. per reference: median normal error | 0.5 eV, 1 eV: AUROC, best-threshold F1, "
        "null F1 | anomaly-free 200000-200003: z 99.9%, flagged (on boundaries)"
    )
    for label in (*recs, "the input itself", "PCA-4 of own"):
        rows: dict[str, list[str]] = {"local": [], "network": []}
        normal = []
        for name, (own, x, truth, phase, _) in cubes.items():
            if label == "the input itself":
                rec = x
            elif label == "PCA-4 of own":
                rec = pca_reconstruction(own, 4)
            else:
                rec = decoded[name][0][label]
            if not truth.any():
                normal.append(float(np.median(pearson_distance(own, rec, ch))))
            for reference, cells in rows.items():
                s = score_pixels(own, rec, ch, reference)
                mask = s > reference_threshold(s, reference)
                if truth.any():
                    best = oracle_f1(s, truth)
                    scores = classification(s, mask, truth)
                    cells.append(f"{name} {scores['auroc']:.4f} {best:.3f} {scores['f1']:.3f}")
                else:
                    on_edge = (mask & boundary(phase)).sum() / max(1, mask.sum())
                    cells.append(
                        f"{np.percentile(robust_z(s), 99.9):.2f} "
                        f"{100 * mask.mean():.2f}% ({100 * on_edge:.0f}%)"
                    )
        for reference, cells in rows.items():
            print(
                f"   {label}, {_NAMES[reference]}: {np.median(normal):.4f} | " + " | ".join(cells),
                flush=True,
            )


if __name__ == "__main__":
    main()
