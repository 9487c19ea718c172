#!/usr/bin/env bash
# Recipe of convsuite-medseg's bundled IVD-Net weights: weights/ivdnet_small.* (and the early-fusion
# U-Net baseline weights/unet_early_fusion_small.*, trained with the same first-stage budget).
#
# Run from the repository root after `make test` (or `make demo`) has created .venv:
#     bash shared/recipes/medseg_ivdnet_small.sh [WORK_DIR]
# Data: 24 simulated Dixon spine phantoms (seed 11, 36 x 256 x 256 at 2.0 x 1.25 x 1.25 mm, random
# storage orientations; 22 train / 2 validation subjects). Stage 1, the same budget for every
# network: STEPS Adam steps of 4 sagittal slices (160 mm antero-posterior crops), lr 1e-3 (chosen by
# the learning-rate experiment in packages/medseg/README.md), MONAI's Dice + cross-entropy: with the
# reference's plain cross-entropy a first run predicted no disc at all after 136 steps (the discs
# are ~2% of the pixels; validation Dice 0.0006), so the recipe uses the Dice option. The loss is
# taken on the logits upsampled to the 1.25 mm labels (the network works at 2.5 mm). No in-plane
# rotation (--rotate-deg 0): +-20 degrees from random weights left validation Dice at 0 through
# step 374 of this budget. IVD-Net (the bundled weights) is then fine-tuned in three more stages on
# slices turned in-plane (the spine's sagittal tilt): stage 2 from stage 1, +-20 degrees, lr 3e-4,
# 500 steps; stage 3 from stage 2, +-25 degrees, lr 1e-4, 600 steps. Stage 3's --seed 1 also
# changes the subject split: its 2 validation subjects were trained on in stages 1-2, so its
# checkpoint was selected on training subjects and its validation Dice is optimistic (kept as it
# was run: the bundled weights descend from it). Stage 4 (session 5) closes that: from
# stage 3, on 20 new phantoms with sagittal tilts of std 15 degrees and half the discs
# degenerated (seed 12), +-20 degrees, lr 1e-4, 900 steps (904: 8 equal epochs), its checkpoint
# picked with --val-data on 4 more phantoms (seed 13) that no stage trains on, whatever the seed.
# Its 24-minute cap only guards the budget: the recipe checks that stage 4 took its planned steps
# (the card's metrics.steps) and otherwise stops with an error before copying any weights.
# Stage 4's data hold as many tilted and degenerated discs as the held-out sets below: those are
# no longer "what the training set holds few of".
# Step numbers below count from 0, as the model cards do.
# Held-out evaluation: 8 phantoms (seed 2026) with stronger tilts (std 15 degrees instead of 6)
# and more degenerated discs (40% instead of 15%), which stages 1-3's training set holds few of;
# the segmenter's default sub-pixel shifted grids (4 network passes per slice). These 8 were used
# during development (the default shifts and stage 3 were chosen on them), and so were 16 more
# (seed 4242: stage 4 was adopted on them); the unbiased figure is the last step's 16 phantoms of
# seed 9191, generated once after stage 4 was bundled and looked at only for the final figures.
# Measured, one torch thread on the 2-core CPU shared with 5 other agents' jobs (load 8-10):
# stage 1 (2026-12-02, second session; the first session's phantom sets reused, their simulation
# took 336 s): IVD-Net 686 s (best validation Dice 0.942 at 1.25 mm, step 374), early-fusion U-Net
# 106 s (0.913), late-fusion U-Net 283 s (0.938). Stages 2-3 (2026-12-02, third session): stage 2
# was run as `--init ivdnet_small` (then stage 1's weights, the same bytes) `--max-steps 1000
# --max-minutes 24`; the time cap stopped it at step 586 after 1473 s; its validations at steps
# 124/249/374/499 (0.9425/0.9442/0.9424/0.9426) are the ones a 500-step run makes, and its best,
# step 249, is what STEPS2=500 exports (expected bit for bit on one thread; not re-run). Stage 3:
# 854 s (best validation Dice 0.949, step 359). About 54 min for the bundled weights with the
# simulation (stage 2 at 500 steps ~21 min loaded). Held out (shifted grids): IVD-Net Dice 0.919,
# HD95 1.32 mm, centroid error 0.65 mm, 56 of 56 discs found; at the equal budget of stage 1:
# IVD-Net 0.890 / 1.41 mm / 0.72 mm / 56 of 56, early fusion 0.853 / 5.10 mm / 1.03 mm / 54 of 56,
# late fusion 0.853 / 7.63 mm / 1.01 mm / 52 of 56. Fresh set (2026-12-02, fourth session, one
# thread): Dice 0.927, HD95 2.54 mm, centroid error 0.41 mm, 111 of 112 discs, all 7 in 15 of 16
# subjects, 5.3 s per subject (stage 3's weights). Stage 4 (2026-12-02, session 5, one
# thread, load ~7): simulation 124 s (20 subjects) + 38 s (4), training 933 s (best validation
# Dice 0.922 at the last step, 903); seed 4242 (now development) Dice 0.932, HD95 1.25 mm,
# 112 of 112 discs, all 7 in 16 of 16, scored not by this recipe's `medseg ivd evaluate` but by a
# one-off script (not kept): VolumeSegmenter.disc_probability thresholded as `segment` does, then
# score_subject; scored that way stage 3 gives the lead's `ivd evaluate` figures (0.927 / 2.54 mm /
# 0.41 mm) exactly. Seed 9191 (untouched, `ivd evaluate`): see packages/medseg/README.md.
# About 72 min for the bundled weights with the simulations.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bundle.sh"
export OMP_NUM_THREADS=1
WORK=${1:-recipe-medseg-ivd}
STEPS=${STEPS:-500}
STEPS2=${STEPS2:-500}
STEPS3=${STEPS3:-600}
STEPS4=${STEPS4:-900}
MEDSEG=${MEDSEG:-.venv/bin/medseg}
WEIGHTS=packages/medseg/src/convsuite/medseg/weights
SECONDS=0

# (existing phantom sets are kept: a rerun starts at the training)
[ -f "$WORK/spine/train/meta.json" ] || "$MEDSEG" ivd simulate --n 24 --seed 11 --out "$WORK/spine/train"
[ -f "$WORK/spine/test/meta.json" ] || "$MEDSEG" ivd simulate --n 8 --seed 2026 --tilt-deg 15 \
    --degenerated 0.4 --out "$WORK/spine/test"
[ -f "$WORK/spine/train4/meta.json" ] || "$MEDSEG" ivd simulate --n 20 --seed 12 --tilt-deg 15 \
    --degenerated 0.5 --out "$WORK/spine/train4"
[ -f "$WORK/spine/val4/meta.json" ] || "$MEDSEG" ivd simulate --n 4 --seed 13 --tilt-deg 15 \
    --degenerated 0.4 --out "$WORK/spine/val4"
echo "simulated in $SECONDS s"

for model in ivdnet unet_early_fusion; do
    "$MEDSEG" ivd train "$WORK/spine/train" --model "$model" --preset small --max-steps "$STEPS" \
        --epochs 100 --batch-size 4 --lr 1e-3 --loss dicece --rotate-deg 0 --accelerator cpu \
        --out "$WORK/runs/$model"
    echo "$model trained by $SECONDS s"
done

# Stage 2: IVD-Net fine-tuned from stage 1 on slices turned by up to +-20 degrees.
"$MEDSEG" ivd train "$WORK/spine/train" --model ivdnet --preset small \
    --init "$WORK/runs/ivdnet/ivdnet.safetensors" --max-steps "$STEPS2" --epochs 100 \
    --batch-size 4 --lr 3e-4 --loss dicece --rotate-deg 20 --accelerator cpu \
    --out "$WORK/runs/ivdnet_tilted"
echo "ivdnet stage 2 by $SECONDS s"
# Stage 3: from stage 2, up to +-25 degrees, lr 1e-4, another subject split.
"$MEDSEG" ivd train "$WORK/spine/train" --model ivdnet --preset small \
    --init "$WORK/runs/ivdnet_tilted/ivdnet.safetensors" --max-steps "$STEPS3" --epochs 100 \
    --batch-size 4 --lr 1e-4 --loss dicece --rotate-deg 25 --seed 1 --accelerator cpu \
    --out "$WORK/runs/ivdnet_tilted2"
echo "ivdnet stage 3 by $SECONDS s"
# Stage 4: from stage 3, on tilted phantoms with more degenerated discs; the checkpoint is picked
# on subjects no stage trained on (--val-data: every train4 subject is trained on).
"$MEDSEG" ivd train "$WORK/spine/train4" --model ivdnet --preset small \
    --init "$WORK/runs/ivdnet_tilted2/ivdnet.safetensors" --val-data "$WORK/spine/val4" \
    --max-steps "$STEPS4" --max-minutes 24 --epochs 100 --batch-size 4 --lr 1e-4 --loss dicece \
    --rotate-deg 20 --accelerator cpu --out "$WORK/runs/ivdnet_stage4"
echo "ivdnet fine-tuned by $SECONDS s"
# The 24-minute cap only guards the budget: had it stopped stage 4 before its planned steps (904
# for STEPS4=900: train_ivd's equal epochs, 8 of 113 for 496 slices in batches of 4), the bundled
# checkpoint would be another one, and `require_full_run` stops here.
require_full_run "$WORK/runs/ivdnet_stage4/ivdnet.json"

bundle "$WORK" "$WORK/runs/ivdnet_stage4/ivdnet" "$WEIGHTS/ivdnet_small"
bundle "$WORK" "$WORK/runs/unet_early_fusion/unet_early_fusion" "$WEIGHTS/unet_early_fusion_small"
echo "weights recipe done in $SECONDS s"

# The comparison: the late-fusion variant with stage 1's budget, then on held-out data the bundled
# IVD-Net and, at equal budget, stage 1's IVD-Net and the two U-Nets.
"$MEDSEG" ivd train "$WORK/spine/train" --model unet_late_fusion --preset small \
    --max-steps "$STEPS" --epochs 100 --batch-size 4 --lr 1e-3 --loss dicece --rotate-deg 0 \
    --accelerator cpu \
    --out "$WORK/runs/unet_late_fusion"
"$MEDSEG" ivd evaluate "$WORK/spine/test" --weights ivdnet_small \
    --baseline "$WORK/runs/ivdnet/ivdnet.safetensors" \
    --baseline "$WEIGHTS/unet_early_fusion_small.safetensors" \
    --baseline "$WORK/runs/unet_late_fusion/unet_late_fusion.safetensors" \
    --out "$WORK/evaluation_test.json" --figure "$WORK/evaluation_test.png"
# 16 phantoms of seed 4242: the third session's unbiased set, the development set of stage 4.
[ -f "$WORK/spine/fresh/meta.json" ] || "$MEDSEG" ivd simulate --n 16 --seed 4242 --tilt-deg 15 \
    --degenerated 0.4 --out "$WORK/spine/fresh"
"$MEDSEG" ivd evaluate "$WORK/spine/fresh" --weights ivdnet_small \
    --out "$WORK/evaluation_fresh.json"
# The unbiased figure: 16 phantoms of seed 9191 that no choice was made on.
[ -f "$WORK/spine/untouched/meta.json" ] || "$MEDSEG" ivd simulate --n 16 --seed 9191 \
    --tilt-deg 15 --degenerated 0.4 --out "$WORK/spine/untouched"
"$MEDSEG" ivd evaluate "$WORK/spine/untouched" --weights ivdnet_small \
    --out "$WORK/evaluation_untouched.json"
echo "all done in $SECONDS s"
