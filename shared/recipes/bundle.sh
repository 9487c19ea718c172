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
