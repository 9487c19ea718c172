#!/usr/bin/env bash
# Recipe of convsuite-cosmo's bundled SkyReconNet checkpoints: weights/skyrecon_nside<N>.{safetensors,json}.
#
# Run from the repository root after `make test` (or `make demo`) has created .venv:
#     bash shared/recipes/cosmo_skyrecon.sh [WORK_DIR]
# Trains the `small` preset (adaptive_scale: each map divided by its observed pixels' RMS) on skies
# simulated on the fly from a FAMILY of priors (issue 13: `cosmo-train --prior-family wide`: per sky
# a beam FWHM 5-60 arcmin, amplitude +-20%, tilt n_s 0.92-1.00, white noise 0-30 muK arcmin, a
# galactic cut f_sky 0.6-0.9 plus point sources; training seeds from 10^6, validation from 2 x 10^6,
# never the evaluation seeds), one thread, each Nside started from the one below (levels shared by
# name; a new top level starts at exactly the diffusive pre-fill):
#   Nside 64:  3 epochs x 128 skies, batch 2, lr 2e-3, at most 9 minutes
#   Nside 128: from the new 64: 1 epoch x 120 skies, lr 3e-4, at most 7 minutes
#   Nside 256: from the new 128: 1 epoch x 60 skies, lr 3e-4, at most 6 minutes
# and copies each into the package. The card's metrics give the validation hole MSE of the network
# (val_mse, in units of each map's RMS squared) and of its diffusive pre-fill alone
# (val_mse_prefill): the network's own share on the training family.
# Measured 2026-12-02 on the 2-core CPU shared with 5 other agents' jobs (OMP_NUM_THREADS=1):
# 1594 s in all (Nside 64: 577 s, 110 steps; 128: 504 s, 20 steps; 256: 513 s, 6 steps, each
# stopped by its time cap). Validation hole MSE, network / its pre-fill (units of each map's RMS^2):
# 64: 0.78822 / 0.78832, 128: 0.86892 / 0.86900, 256: 0.81015 / 0.81022: the network adds nothing
# measurable at this budget (packages/cosmo/README.md, "Bundled checkpoints").
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bundle.sh"
WORK=${1:-recipe-cosmo}
BIN=${BIN:-.venv/bin}
WEIGHTS=packages/cosmo/src/convsuite/cosmo/weights
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

train() {  # NSIDE EPOCHS N_TRAIN LR MINUTES [INIT]
    local nside=$1 init_args=()
    [ -n "${6:-}" ] && init_args=(--init "$6")
    local started=$SECONDS
    "$BIN/cosmo-train" --nside "$nside" --epochs "$2" --n-train "$3" --n-val 8 --batch-size 2 \
        --lr "$4" --max-minutes "$5" --prior-family wide --accelerator cpu --devices 1 \
        "${init_args[@]}" --out "$WORK/nside$nside"
    bundle "$WORK" "$WORK/nside$nside/skyrecon" "$WEIGHTS/skyrecon_nside$nside"
    echo "Nside $nside: $((SECONDS - started)) s" >&2
}

train 64 3 128 2e-3 9
train 128 1 120 3e-4 7 skyrecon_nside64
train 256 1 60 3e-4 6 skyrecon_nside128
