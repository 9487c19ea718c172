#!/usr/bin/env bash
# Recipe of convsuite-cosmo's bundled SkyReconNet checkpoints: weights/skyrecon_nside<N>.{safetensors,json}.
#
# Run from the repository root after `make test` (or `make demo`) has created .venv:
#     bash shared/recipes/cosmo_skyrecon.sh [NSIDE] [WORK_DIR]
# The bundled checkpoints, each level started from the one below (a new top level starts at the
# diffusive fill; INIT is a bundled name or a .safetensors path):
#   Nside 64:  bash shared/recipes/cosmo_skyrecon.sh 64                      (10 min)
#   Nside 128: EPOCHS=2 N_TRAIN=100 LR=3e-4 \
#              INIT=skyrecon_nside64 \
#              bash shared/recipes/cosmo_skyrecon.sh 128                     (6 min)
#   Nside 256: EPOCHS=1 N_TRAIN=60 LR=3e-4 \
#              INIT=skyrecon_nside128 \
#              bash shared/recipes/cosmo_skyrecon.sh 256
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
LR=${LR:-2e-3}
INIT_ARGS=()
[ -n "${INIT:-}" ] && INIT_ARGS=(--init "$INIT")
"$BIN/cosmo-train" --nside "$NSIDE" --epochs "$EPOCHS" --n-train "$N_TRAIN" --n-val 8 --batch-size 2 \
    --lr "$LR" "${INIT_ARGS[@]}" --out "$WORK"

mkdir -p "$WEIGHTS"
for suffix in safetensors json; do
    cp "$WORK/skyrecon.$suffix" "$WEIGHTS/skyrecon_nside$NSIDE.$suffix"
done

"$BIN/cosmo-evaluate" --nside "$NSIDE" --n 3 --out "$WORK/evaluation.json"
