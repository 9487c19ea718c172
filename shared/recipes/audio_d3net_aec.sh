#!/usr/bin/env bash
# Recipe of convsuite-audio's bundled weights: weights/d3aec_small.{safetensors,json}.
#
# Run from the repository root after `make test` has created .venv:
#     bash shared/recipes/audio_d3net_aec.sh [WORK_DIR]
# The "small" preset (stem 8, growth 6, 4 layers x 2 D2 blocks: 24,964 parameters, causal), in four
# stages on ONE CPU thread: 1-3 of 24 minutes each, 4 of 3 epochs (120 steps) capped at 16 minutes:
# 75 min of training in all for the bundled weights (4524 s on an idle core, with validation and
# export), at most 88 (issue 16 allows 90); the held-out evaluation at the end adds ~1 min:
#   1. from random weights: Adam 2e-3, simulated 2-s calls (batches of 4, 40 batches per epoch from
#      a pool of 6000 call seeds, scenario mix 20/20/60 % fst/nst/dt), spectral loss only (the
#      residual-energy term of convsuite.audio.train did not exist yet: --residual-weight 0);
#   2. from stage 1 with the full loss (spectral + 0.01 x residual energy in dB, i.e. minus the
#      ERLE in far-end single talk), Adam 1e-3, 40 % far-end single talk, fresh call seeds;
#   3. from stage 2, Adam 5e-4, 30 % far-end single talk, fresh call seeds;
#   4. from stage 3, Adam 3e-4, 30 % far-end single talk, fresh call seeds, plus a speech-distortion
#      term (weight 0.5: the spectral loss of the near-end speech passed through both masks,
#      aimed at double-talk near-end quality; convsuite.audio.train.speech_distortion); 3 epochs.
# Each stage keeps its epoch of best validation loss (16 calls, default 20/20/60 mix).
# Stages 1-3 stop on time, so their step counts (and weights) depend on the machine's load: a new
# run gives weights of the same kind, not the same bytes. Stage 4 stops on steps (the recipe checks
# the step count the stage-4 card records, metrics.steps, and stops with an error, copying nothing,
# when the 16-minute cap cut it short). STAGE1=path/to/weights.safetensors skips stage 1.
#
# The bundled weights (ninth session, 2026-12-02 19:32-20:49 UTC): this script as written, on one
# core of the otherwise idle 2-core machine (a one-thread helper job on the other core for the first
# half hour, a second training from 20:07): stage 1 1447 s, 985 steps, best validation loss 0.0522;
# stage 2 1447 s, 985 steps, -0.0940; stage 3 1446 s, 980 steps, -0.1087; stage 4 184 s, 120 steps,
# -0.0798 (its loss has the distortion term): 4524 s = 75 min of training, about 8x the steps of the
# earlier run below, which shared the machine with five other agents. Held-out, the 48 calls below
# (2026-12-03): fst ERLE 43.84 dB, dt PESQ-WB 1.232 (NLMS 1.160, SpeexDSP 1.209), dt STOI 0.62,
# nst PESQ-WB 1.70, AECMOS echo fst 4.18 / dt 4.52 (packages/audio/README.md); on their first 12,
# the held-out set until then: 53.35 dB, 1.11, 0.60, 1.69, 4.46 / 4.31. Tried beside it, not
# adopted (the same stage 1; stages 2 and 3 with --distortion-weight 0.5 too, run at the same time
# on the other core): on the first 12 calls fst ERLE 52.27 dB, dt PESQ-WB 1.10, nst PESQ-WB 1.62,
# AECMOS echo 4.47 / 4.21; the recipe as written was the planned candidate, so this was no
# selection on the held-out set.
#
# Tried in the tenth session (2026-12-03), not adopted: a fresh stage 1 as above (1447 s), then two
# branches of stages 2-4 as above, one core each at the same time (1448 + 1448 + 210 s each), with
#   A. --residual-floor-db -40 (the residual term stops pulling past ~40 dB of ERLE);
#   B. the same, with the residual term on far-end single talk only (an option since dropped).
# Chosen beforehand: the branch with the higher dt PESQ-WB among those with ERLE >= 35 dB on a
# train-split selection set (`aec simulate --split train --seed 90000 --count 24 --seconds 6`):
# bundled ERLE 47.76 dB / dt PESQ-WB 1.349 / AECMOS echo fst 4.23, dt 4.57; A 39.02 / 1.372 /
# 3.68, 4.37; B 45.48 / 1.217 / 3.87, 4.32: A. On the held-out 48 calls (below) A gave ERLE 36.20
# dB, dt PESQ-WB 1.263, AECMOS echo 4.03 / 4.36, nst PESQ-WB 1.76 (bundled 43.84, 1.232, 4.18 /
# 4.52, 1.70); on a second draw of 96 test-split calls (`--seed 2000 --count 96`) 35.71 dB, 1.245,
# 4.13 / 4.46 (bundled 44.49, 1.204, 4.42 / 4.56; SpeexDSP dt PESQ-WB 1.196). A trades ERLE and
# AECMOS echo for double-talk PESQ-WB: not a better point on every target, so the weights stay.
# Then (rule fixed before: on the selection set ERLE >= 35 dB, dt AECMOS echo >= 4.5, dt PESQ-WB
# above the bundled 1.349): C, A's stage 3 plus stage 4 as written (no floor): 43.77 dB, 1.306,
# AECMOS echo 4.03 / 4.52; D, A's stage 4 plus a fifth stage as stage 4 (no floor, --seed 24000):
# 40.59 dB, 1.338, 3.58 / 4.43. Neither passed; neither was scored on the held-out set.
#
# Tried in the eleventh session (2026-12-03), not adopted: E, this script as written on TWO threads
# (OMP_NUM_THREADS=2: a step 0.92-1.0 s instead of 1.6-1.7 s), bundling into a scratch folder:
# stage 1 879 steps (another job held a core for much of it), stages 2 and 3 1374 and 1686 (bundled
# 985, 980), stage 4 120 steps in 104 s; best validation losses 0.0554, -0.0858, -0.1130, -0.0848.
# Rule fixed before: selection set ERLE >= 35 dB and dt AECMOS echo >= 4.5 (46.98 dB, 4.51:
# passed), then on both held-out draws dt PESQ-WB and fst AECMOS echo no lower than the bundled
# weights': 48 / 96 calls ERLE 43.76 / 43.30 dB, dt PESQ-WB 1.229 / 1.202 (bundled 1.232 / 1.204),
# AECMOS echo fst 4.19 / 4.35 (4.18 / 4.42), dt 4.53 / 4.57: not adopted; the recipe stays on one
# thread, so that its stages' step counts match the bundled run's.
#
# The earlier bundled weights (eighth session and before), for comparison:
# Measured on 2026-12-02 on the 2-core machine shared with five other agents (load average 5-12),
# one thread each:
#   stage 1 (first session; commit 6cab710's bundled weights): 1469 s, ~130 steps, best
#     validation loss 0.0766 (spectral loss only; -0.0159 with the full loss);
#   stage 2 (second session, STAGE1 = those weights; run with --out WORK/run): 1468 s, 182 steps,
#     best validation loss -0.0123; held-out fst ERLE 31.17 dB, dt PESQ-WB 1.10;
#   stage 3: 1466 s, 295 steps, best validation loss -0.0473; held-out fst ERLE 35.77 dB
#     (mean of 4 calls), dt PESQ-WB 1.12, AECMOS echo fst 3.90 / dt 4.07;
#   stage 4 (bundled): first run in the third session (07:21-07:42 UTC, load ~9) with a 20-minute
#     cap and no epoch limit: 149 steps in 1235 s; its best validation loss, -0.0406 (full loss
#     with the distortion term: not comparable with stage 3's), came at the end of its third epoch
#     (step 120, 930 s after the start), and that checkpoint is the bundled file. Re-run as written
#     here (EPOCHS=3; fifth session, 10:33-10:42 UTC, load ~6, from the bundled stage-3 weights):
#     566 s, 120 steps, the same validation losses (-0.0401, -0.0371, -0.0406) and the same file
#     (SHA-1 c8f75dfd); the card is this run's (its command says --max-minutes 20: the cap did not
#     bind, 120 steps took 9.2 min of fitting, so the recipe's 16 gives the same file). Held-out
#     fst ERLE 38.00 dB (all 4 calls >= 36.8), dt PESQ-WB 1.14, AECMOS echo fst 4.27 / dt 4.20
#     (packages/audio/README.md).
#   In all: 1469 + 1468 + 1466 + 566 = 4969 s (83 min); with the first stage-4 run's 930 s, 89 min.
# Tried in the fifth session, not adopted (stage 4 from the same stage-3 weights, 14-minute cap,
# no epoch limit, load 5-7):
#   a. --distortion-weight 1.0 (chosen before the run: the near end is what the network damages,
#      nst PESQ-WB 1.20 against 3.12 unprocessed): 854 s, 218 steps, best validation loss -0.0290
#      (last step); held-out fst ERLE 37.37 dB (every call >= 36.9), dt PESQ-WB 1.131 (bundled
#      1.143), dt STOI 0.59 (0.55), nst PESQ-WB 1.22 (1.20), AECMOS echo fst 4.26 / dt 4.03 (4.27 /
#      4.20): dt PESQ-WB and AECMOS echo lower, so not adopted;
#   b. distortion weight 0.5 as above: 858 s, 198 steps, best validation loss -0.0418 (last step,
#      below the bundled step 120's -0.0406); held-out fst ERLE 36.93 dB (one call 33.0), dt
#      PESQ-WB 1.095, AECMOS echo fst 4.33 / dt 4.25. A lower validation loss on 16 calls picked a
#      checkpoint 0.05 worse in dt PESQ-WB: selection by validation loss is noisy at this size.
# The held-out evaluation below (48 test-split calls of 6 s, 16 per scenario; the first 12 were the
# held-out set up to the ninth session): about 1 min on an idle core.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/bundle.sh"
WORK=${1:-recipe-audio}
AEC=${AEC:-.venv/bin/aec}
WEIGHTS=packages/audio/src/convsuite/audio/weights
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

stage() {  # [MINUTES=M] [EPOCHS=E] stage NAME ARGS...: one `aec train` into $WORK/NAME
    local name=$1 start
    shift
    start=$(date +%s)
    "$AEC" train --preset small --out "$WORK/$name" \
        --weights "$WORK/$name/d3aec_small.safetensors" --calls 6000 --steps-per-epoch 40 \
        --epochs "${EPOCHS:-1000}" --max-minutes "${MINUTES:-24}" --seconds 2 --batch-size 4 "$@"
    echo "$name took $(( $(date +%s) - start )) s"
}

if [ -z "${STAGE1:-}" ]; then
    stage stage1 --residual-weight 0 --lr 2e-3 --seed 0
    STAGE1="$WORK/stage1/d3aec_small.safetensors"
fi
stage stage2 --init "$STAGE1" --fst-share 0.4 --lr 1e-3 --seed 6000
stage stage3 --init "$WORK/stage2/d3aec_small.safetensors" --fst-share 0.3 --lr 5e-4 --seed 12000
EPOCHS=3 MINUTES=16 stage stage4 --init "$WORK/stage3/d3aec_small.safetensors" --fst-share 0.3 \
    --lr 3e-4 --seed 18000 --distortion-weight 0.5
# The 16-minute cap only guards the budget: had it stopped stage 4 before its 120 planned steps
# (3 epochs of 40), the checkpoint would not be the bundled one, and `require_full_run` stops here.
require_full_run "$WORK/stage4/d3aec_small.json"
bundle "$WORK" "$WORK/stage4/d3aec_small" "$WEIGHTS/d3aec_small"

# Held-out evaluation: talkers, rooms and echo paths from the test split (never seen in training).
"$AEC" simulate --seed 0 --count 48 --seconds 6 --split test --out "$WORK/heldout"
"$AEC" evaluate "$WORK/heldout" --weights "$WEIGHTS/d3aec_small.safetensors" --out "$WORK/evaluation"
