# Sourced by the recipes. bundle WORK SRC DST: copy the checkpoint SRC.safetensors and its card
# SRC.json to DST.safetensors and DST.json, the card with the recipe's work folder written WORK,
# so that a bundled card names no path of the machine it was trained on and reads as the
# recipe's own command (`--out WORK/...`).
bundle() {
    local work=${1%/} src=$2 dst=$3
    cp "$src.safetensors" "$dst.safetensors"
    WORK_DIR="$work" python3 -c '
import os, sys
sys.stdout.write(sys.stdin.read().replace(os.environ["WORK_DIR"], "WORK"))' <"$src.json" >"$dst.json"
}

# complete CARD: stop the recipe unless the run that wrote CARD took every step it planned (the
# card's metrics `steps` and `planned_steps`, written by core-ops' export_best): a time cap that
# ended it early would leave another checkpoint than the one the recipe describes.
complete() {
    python3 - "$1" <<'PY'
import json, sys
metrics = json.load(open(sys.argv[1]))["metrics"]
if metrics["steps"] < metrics["planned_steps"]:
    sys.exit(
        f"{sys.argv[1]}: the run stopped at step {metrics['steps']:.0f} of "
        f"{metrics['planned_steps']:.0f} (its time cap): weights not bundled; rerun it on a less "
        "loaded machine or with the cap raised"
    )
PY
}
