# Sourced by the recipes (`. "$(dirname "${BASH_SOURCE[0]}")/bundle.sh"`).

# bundle WORK SRC DST: copy the checkpoint SRC.safetensors and its card SRC.json to DST.safetensors
# and DST.json, the card's text values with the recipe's work folder written WORK (where the folder
# is a whole path prefix: WORK/..., or WORK itself), so that a bundled card names no path of the
# machine it was trained on and reads as the recipe's own command (`--out WORK/...`). DST's folder
# is made if missing; the card is written first: a failure leaves the bundled pair as it was.
bundle() {
    local work=${1%/} src=$2 dst=$3
    mkdir -p "$(dirname "$dst")"
    python3 - "$work" "$src.json" "$dst.json" <<'PY'
import json, os, re, sys

work, src, dst = sys.argv[1:]
if work in ("", ".", ".."):
    sys.exit(f"bundle: the work folder {work!r} cannot be told apart in a card; give a named folder")
# the folder as a whole word: not inside another name (--out, runs/out) nor a longer one (out2)
prefix = re.compile(r"(?<![\w./-])" + re.escape(work) + r"(?=/|[\s'\"),;]|$)")


def rewritten(value):
    if isinstance(value, str):
        return prefix.sub("WORK", value)
    if isinstance(value, dict):
        return {key: rewritten(item) for key, item in value.items()}
    if isinstance(value, list):
        return [rewritten(item) for item in value]
    return value


card = rewritten(json.load(open(src, encoding="utf-8")))
with open(dst + ".tmp", "w", encoding="utf-8") as handle:
    handle.write(json.dumps(card, indent=2, sort_keys=True) + "\n")
os.replace(dst + ".tmp", dst)
PY
    cp "$src.safetensors" "$dst.safetensors.tmp" && mv "$dst.safetensors.tmp" "$dst.safetensors"
}

# require_full_run CARD: stop the recipe unless the run that wrote CARD took every step it planned
# (the card's metrics `steps` and `planned_steps`, written by core-ops' export_best): a time cap
# that ended it early would leave another checkpoint than the one the recipe describes.
require_full_run() {
    python3 - "$1" <<'PY'
import json, sys

card = sys.argv[1]
metrics = json.load(open(card, encoding="utf-8"))["metrics"]
if "planned_steps" not in metrics or "steps" not in metrics:
    sys.exit(f"{card}: no steps/planned_steps in the card's metrics; cannot tell a full run")
if metrics["steps"] < metrics["planned_steps"]:
    sys.exit(
        f"{card}: the run stopped at step {metrics['steps']:.0f} of "
        f"{metrics['planned_steps']:.0f} (its time cap): weights not bundled; rerun it on a less "
        "loaded machine or with the cap raised"
    )
PY
}
