#!/usr/bin/env bash
# WM-811K end to end with convsuite-semicon, for a user who has LSWMD.pkl (Wu et al. 2015; Kaggle
# "WM-811K wafer map"; not downloadable from this machine, so never run here on the real file).
#
#     bash shared/recipes/semicon_wm811k.sh LSWMD.pkl [WORK_DIR] [LIGHTNING OPTIONS...]
#
# 1. convert: the only step that unpickles (--trust-pickle): 172,950 labelled die maps as .npz
#    (train/ 54,355 "Training", test/ 118,595 "Test", index.csv with lot, wafer index, die count).
# 2. train: the die-level network (`--preset auto` picks `die` for maps of >= 1 mm pitch: a 64 grid,
#    each die covering the cells under it, with the shape profile), 10 epochs, 20% of train/ for
#    validation and the novelty threshold (5% false alarms).
# 3. evaluate on test/: closed-set accuracy, macro-F1, novelty AUROC (no pattern is novel there:
#    every label is known, so AUROC/OSCR need a held-out class, step 4), confusion matrix.
# 4. (PROTOCOL=1) protocol: each of the nine patterns held out in turn, sparse die-level network vs
#    the binned 32x32 dense baseline, one seed, 5 epochs.
# Time: not measured on the real file (this machine cannot download it). Estimated from the die
# preset's speed measured on simulated 52-die maps on one thread of this 2-core CPU shared with
# five other jobs (73 maps/s training, 175 maps/s inference): steps 2-3 about 2 hours (10 epochs
# of 43,484 maps, then 118,595 test maps), plus the conversion; step 4 about 8 hours more.
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
LSWMD=${1:?usage: semicon_wm811k.sh LSWMD.pkl [WORK_DIR] [LIGHTNING OPTIONS...]}
WORK=${2:-recipe-wm811k}
shift 2 || shift $#
MONITOR=${MONITOR:-.venv/bin/wafer-monitor}

[ -f "$WORK/maps/index.csv" ] || "$MONITOR" convert "$LSWMD" --out "$WORK/maps" --trust-pickle
"$MONITOR" train "$WORK/maps/train" --epochs 10 --batch-size 64 --out "$WORK/model" "$@"
"$MONITOR" evaluate "$WORK/maps/test" --model "$WORK/model" --figures "$WORK/evaluation"
if [ "${PROTOCOL:-0}" = 1 ]; then
    "$MONITOR" protocol --maps "$WORK/maps" --epochs 5 --seeds 1 --batch-size 64 \
        --out "$WORK/protocol.json" "$@"
fi
