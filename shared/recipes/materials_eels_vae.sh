#!/usr/bin/env bash
# Recipe of convsuite-materials' bundled VAE: weights/eels_vae_small.{safetensors,json}.
#
# Run from the repository root after `make test` (or `make demo`) has created .venv:
#     bash shared/recipes/materials_eels_vae.sh [WORK_DIR]
# Trains the `small` preset (widths 8-16-32-64, latent 40 per 4x4-pixel cell, 670-750 eV at 0.5 eV)
# on 8 simulated defect-free 64x64 Fe/Mn oxide cubes (seeds 1000-1007; second phase, mixed valence,
# thickness wedge, 0.3 eV drift) for 30 epochs of 256 random 24x24 shards, batch 8, Adam 2e-3,
# one thread; the best held-out-band loss is kept. Then evaluates it (no fine-tuning) against
# PCA-3/4/5, NMF-3/4/5 and the ring median on held-out cubes (seeds from 100000).
# Measured on the shared 2-core development CPU, 1 thread: 12.9 min in all (training 678 s,
# evaluation ~1.5 min); best held-out loss 79.60 (Bernoulli NLL + 1.2 KL per pixel).
# Evaluation re-run on 2026-12-02 with the same weights (issue 15's second part: null threshold at a
# false-alarm rate of 5e-4, local reference; ~4 min with NMF on the shared CPU, 5 other agents
# running): F1 of the VAE without fine-tuning at 0.5/1/1.5/2/3/5/8/11 eV shifts:
# 0.87/0.99/0.99/0.99/0.98/1.00/0.99/0.99 (PCA-3/4/5 plain at best 0.86/0.50/0.38/0.28/0.64/1.00/
# 0.99/0.62; ring median 0.90-0.96); 0.02% of an anomaly-free cube flagged.
# Re-run again on 2026-12-02 (issue 15's third part; same weights, default reference now `either`,
# plus a cube of 25-pixel clusters; ~9 min with NMF, 5 other agents running): VAE either
# 0.80/0.98/0.99/0.99/0.99/1.00/0.99/0.99, clusters of 9 / 25 pixels 0.91 / 0.27; 0.00% flagged.
# A retrain with `--kl-warmup 6 --max-minutes 20` (20 min, 14 epochs, held-out loss 79.51) was
# tried and not adopted: see the README ("Why the VAE lost at small shifts").
# Session 4 (2026-12-02): not retrained. packages/materials/benchmarks/diagnose_reconstruction.py
# (1.5 min) shows that the ranking, not the reconstruction error, limits the VAE against PCA
# with the same reference (best-threshold local F1 at 0.5 eV 0.961 vs PCA-4 0.998; a perfect
# reconstruction of the smoothed input 0.898), and that the warm-up retrain's false alarms come
# from the null threshold sitting lower in a heavier boundary tail: README ("Where the normal
# pixels' error comes from").
# Session 5 (2026-12-02): not retrained. `train --cell 1 --no-spatial-mean` (one latent per pixel,
# fed each pixel's own spectrum; 8 + 8 min) reaches best-threshold local F1 0.999 at 0.5 eV
# (PCA-4 0.998; packages/materials/benchmarks/small_shifts.py) but loses the clusters and the plain
# score: README ("Testing the fix").
# Session 6 (2026-12-02): not retrained. The per-pixel network (retrained as in session 5) with the
# bundled network's plain score beside it stays below PCA-3/4/5 at 0.5-2 eV and flags 2-4% of
# anomaly-free cubes (small_shifts.py --shifts 0.5 1 1.5 2 3 5 8 11 --pca --pair): README
# ("Every shift, every method").
# Session 7 (2026-12-02): not retrained. The spectral-only per-pixel network (`train --cell 1
# --no-spatial-mean --spatial-kernel 1`, 21 + 10 min) is not above the best of PCA-3/4/5 at every
# shift (after the edge fix: level at 0.5 eV, +0.001 at 2 and 11 eV, 0.002-0.006 below at the
# other five; before it 0.001-0.007 below at every shift), and its local score equals the half-ring
# median of the neighbours (a zero reconstruction scores the same); with `--beta 0.01` (10 min)
# it ties or passes PCA at most shifts but not all: README ("The spectral-only network measured
# properly").
# Figures: packages/materials/README.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bundle.sh"
WORK=${1:-recipe-materials}
BIN=${BIN:-.venv/bin}
WEIGHTS=packages/materials/src/convsuite/materials/weights
export OMP_NUM_THREADS=1

"$BIN/eels-anomaly" train --preset small --cubes 8 --size 64 --epochs "${EPOCHS:-30}" --shards 256 \
    --batch-size 8 --lr 2e-3 --seed 0 --out "$WORK"

bundle "$WORK" "$WORK/eels_vae" "$WEIGHTS/eels_vae_small"

"$BIN/eels-anomaly" evaluate --weights "$WEIGHTS/eels_vae_small.safetensors" --out "$WORK/evaluation"
