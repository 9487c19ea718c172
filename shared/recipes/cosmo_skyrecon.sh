#!/usr/bin/env bash
# Recipe of convsuite-cosmo's bundled SkyReconNet checkpoints: weights/skyrecon_nside<N>.{safetensors,json}.
#
# Run from the repository root after `make test` (or `make demo`) has created .venv:
#     bash shared/recipes/cosmo_skyrecon.sh [NSIDE] [WORK_DIR]
# Nside 64:  bash shared/recipes/cosmo_skyrecon.sh 64
# Nside 128 (tried, not bundled: 13 min, validation hole MSE 0.409 (100 muK)^2 against 0.405 for
# its diffusive pre-fill alone):
#   EPOCHS=2 N_TRAIN=200 INIT=packages/cosmo/src/convsuite/cosmo/weights/skyrecon_nside64.safetensors \
#   bash shared/recipes/cosmo_skyrecon.sh 128
# Trains the `small` preset on skies simulated on the fly (LCDM, beam 2 pixels FWHM, 1 muK arcmin
# noise, galactic cut f_sky 0.6-0.9 plus point sources; training seeds from 10^6, never the
# evaluation seeds), copies the best checkpoint into the package, and scores it against diffusive
# inpainting, the Wiener filter and the constrained realization on 3 held-out skies.
# Nside 64: 4 epochs x 192 skies, batch 2, about 10 min on an idle 2-core CPU.
# Time and figures: packages/cosmo/README.md.
set -euo pipefail
NSIDE=${1:-64}
WORK=${2:-recipe-cosmo-nside$NSIDE}
BIN=${BIN:-.venv/bin}
WEIGHTS=packages/cosmo/src/convsuite/cosmo/weights

EPOCHS=${EPOCHS:-4}
N_TRAIN=${N_TRAIN:-192}
INIT_ARGS=()
[ -n "${INIT:-}" ] && INIT_ARGS=(--init "$INIT")
"$BIN/cosmo-train" --nside "$NSIDE" --epochs "$EPOCHS" --n-train "$N_TRAIN" --n-val 8 --batch-size 2 \
    "${INIT_ARGS[@]}" --out "$WORK"

mkdir -p "$WEIGHTS"
for suffix in safetensors json; do
    cp "$WORK/skyrecon.$suffix" "$WEIGHTS/skyrecon_nside$NSIDE.$suffix"
done

"$BIN/cosmo-evaluate" --nside "$NSIDE" --n 3 --out "$WORK/evaluation.json"
