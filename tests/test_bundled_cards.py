"""No bundled model card names a path of the machine its weights were trained on.

The recipes under ``shared/recipes`` copy a checkpoint into a package's ``weights/`` folder with
``bundle`` (``shared/recipes/bundle.sh``), which writes the recipe's work folder as ``WORK``; a card
copied by hand, or by a recipe that forgot, would carry the trainer's temporary folder instead.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convsuite.core_ops.io import read_card

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted(
    path.with_suffix(".json")
    for path in (ROOT / "packages").glob("*/src/convsuite/*/weights/*.safetensors")
)
# An absolute path in a command or a description: a slash that starts a word and is followed by
# a name (``/tmp/x``, ``--out=/scratch``); ``5/16``, ``GFLOP/s`` and ``mean / std`` are not.
ABSOLUTE_PATH = re.compile(r"(?:^|[\s=:'\"(])/\w")


def test_every_package_with_weights_has_cards() -> None:
    assert len(CARDS) >= 10 and all(card.is_file() for card in CARDS)


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: f"{p.parents[4].name}/{p.stem}")
def test_bundled_card_names_no_machine_path(card_path: Path) -> None:
    card = read_card(card_path)
    for name in ("recipe", "training_data", "intended_use", "inputs", "outputs", "files"):
        value = getattr(card, name)
        text = value if isinstance(value, str) else json.dumps(value)
        assert not ABSOLUTE_PATH.search(text), f"{card_path.name} {name}: {text[:200]}"


def test_the_check_sees_a_temporary_folder() -> None:
    assert ABSOLUTE_PATH.search("train --out /tmp/recipe-materials/run")
    assert ABSOLUTE_PATH.search("slices of /home/me/data (validation: 2 subjects)")
    assert ABSOLUTE_PATH.search("train --out=/scratch")
    assert ABSOLUTE_PATH.search(json.dumps({"root": "/data"}))
    assert not ABSOLUTE_PATH.search("train --out WORK/run, rotation +-20 deg, 5/16 subjects")
    assert not ABSOLUTE_PATH.search("140 GFLOP/s, mean / std")
