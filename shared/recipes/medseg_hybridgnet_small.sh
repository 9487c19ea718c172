#!/usr/bin/env bash
# Recipe of convsuite-medseg's bundled weights: weights/hybridgnet_small.* and weights/unet_small.*.
#
# Run from the repository root after `make test` (or `make demo`) has created .venv:
#     bash shared/recipes/medseg_hybridgnet_small.sh [WORK_DIR]
# Both networks see the same 1000 simulated phantoms (256 px, seed 7; 900 train / 100 validation)
# and are scored on held-out phantoms (seed 2026), clean and with 10/20/30% of the lung field
# occluded. Time, on a 2-core CPU, and the reached figures are in packages/medseg/README.md.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bundle.sh"
WORK=${1:-recipe-medseg}
MEDSEG=${MEDSEG:-.venv/bin/medseg}
WEIGHTS=packages/medseg/src/convsuite/medseg/weights

"$MEDSEG" cxr simulate --n 1000 --seed 7 --size 256 --out "$WORK/phantoms/train"
# Stage 1: Adam 1e-3 from scratch; stage 2: the paper's 1e-4, starting from stage 1.
"$MEDSEG" cxr train "$WORK/phantoms/train" --preset small --epochs 25 --out "$WORK/runs/hybridgnet"
"$MEDSEG" cxr train "$WORK/phantoms/train" --init "$WORK/runs/hybridgnet/hybridgnet.safetensors" \
    --lr 1e-4 --epochs 4 --out "$WORK/runs/hybridgnet_finetune"
"$MEDSEG" cxr train "$WORK/phantoms/train" --baseline --epochs 8 --out "$WORK/runs/unet"

bundle "$WORK" "$WORK/runs/hybridgnet_finetune/hybridgnet" "$WEIGHTS/hybridgnet_small"
bundle "$WORK" "$WORK/runs/unet/unet" "$WEIGHTS/unet_small"

for occlusion in 0 0.1 0.2 0.3; do
    "$MEDSEG" cxr simulate --n 100 --seed 2026 --size 256 --occlusion "$occlusion" \
        --out "$WORK/phantoms/test_$occlusion"
    "$MEDSEG" cxr evaluate "$WORK/phantoms/test_$occlusion" --baseline unet_small \
        --out "$WORK/evaluation_occlusion_$occlusion.json"
done
