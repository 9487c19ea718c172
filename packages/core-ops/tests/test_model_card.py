"""ModelCard v2 through save_checkpoint/load_checkpoint: round trip, version-1 cards, refusals naming
the card file, pickles refused, and check_budget."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from convsuite.core_ops.io import (
    CARD_VERSION,
    InputError,
    ModelCard,
    check_budget,
    load_checkpoint,
    save_checkpoint,
)


def _state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 3, generator=generator)
    return {"weight": weight, "tied": weight, "bias": torch.arange(4.0), "steps": torch.tensor(7)}


def _card() -> ModelCard:
    return ModelCard(
        architecture="SkyReconNet",
        config={"widths": [8, 4], "scale_uk": 100.0, "mask": None},
        recipe="cosmo-train --nside 16 --seed 0",
        training_data="Gaussian skies, seed 0",
        inputs={"nside": 16, "unit": "uK"},
        outputs={"classes": ["sky", "hole"]},
        metrics={"val_loss": 0.125, "epochs": 3},
        intended_use="tests",
        files={"novelty": "net.novelty.json", "extra": "side/net.npz"},
    )


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    """A valid checkpoint ``net.safetensors`` with its card ``net.json``."""
    return save_checkpoint(_state(), tmp_path / "net.safetensors", _card())


def _rewrite_card(weights: Path, change) -> Path:
    card_file = weights.with_suffix(".json")
    values = json.loads(card_file.read_text())
    change(values)
    card_file.write_text(json.dumps(values))
    return card_file


def test_v2_round_trip(checkpoint: Path) -> None:
    state, card = load_checkpoint(checkpoint)
    assert card == _card()
    assert card.card_version == CARD_VERSION == 2
    assert set(state) == {"weight", "tied", "bias", "steps"}
    for name, tensor in _state().items():
        assert torch.equal(state[name], tensor) and state[name].dtype == tensor.dtype
    written = json.loads(checkpoint.with_suffix(".json").read_text())
    assert written["card_version"] == 2 and written["inputs"] == {"nside": 16, "unit": "uK"}
    assert list(written) == sorted(written)
    assert ModelCard.from_json(_card().to_json()) == _card()


def test_version_1_card_still_loads(checkpoint: Path) -> None:
    v1 = {
        "architecture": "SkyReconNet",
        "config": {"widths": [8, 4]},
        "recipe": "cosmo-train",
        "training_data": "Gaussian skies",
        "metrics": {"nside": 64, "val_loss": 0.5},
        "intended_use": "tests",
        "convsuite_version": "0.1.0",
    }
    checkpoint.with_suffix(".json").write_text(json.dumps(v1))
    _, card = load_checkpoint(checkpoint)
    assert card.metrics == {"nside": 64, "val_loss": 0.5}
    assert (card.inputs, card.outputs, card.files) == ({}, {}, {})
    assert card.convsuite_version == "0.1.0" and card.architecture == "SkyReconNet"


def test_newer_card_version_is_refused(checkpoint: Path) -> None:
    card_file = _rewrite_card(checkpoint, lambda v: v.update(card_version=CARD_VERSION + 1))
    with pytest.raises(InputError, match="newer than this convsuite reads") as caught:
        load_checkpoint(checkpoint)
    assert caught.value.source == str(card_file)


def _set(key, value):
    return lambda values: values.update({key: value})


def _drop(key):
    return lambda values: values.pop(key)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_set("architecture", 3), "field 'architecture' must be str, got int"),
        (_set("config", "widths=8"), "field 'config' must be dict, got str"),
        (_set("metrics", [0.1]), "field 'metrics' must be dict, got list"),
        (_set("inputs", 16), "field 'inputs' must be dict, got int"),
        (_set("files", ["a.json"]), "field 'files' must be dict, got list"),
        (_set("metrics", {"val_loss": "low", "ok": 1}), "metrics must be numbers: val_loss"),
        (_set("metrics", {"converged": True}), "metrics must be numbers: converged"),
        (_set("metrics", {"val_loss": None}), "metrics must be numbers: val_loss"),
        (_set("files", {"novelty": 3}), "files must be names relative to the card's folder"),
        (_set("files", {"novelty": "/etc/passwd"}), "files must be names relative"),
        (_set("files", {"novelty": "../other/x.json"}), "files must be names relative"),
        (_set("card_version", "2"), "card_version must be a positive integer, got '2'"),
        (_set("card_version", True), "card_version must be a positive integer, got True"),
        (_set("card_version", 0), "card_version must be a positive integer, got 0"),
        (_set("nside", 64), "unknown keys 'nside'"),
        (_drop("recipe"), "lacks 'recipe'"),
    ],
)
def test_broken_card_is_refused_in_one_line_naming_the_card(checkpoint, change, expected) -> None:
    card_file = _rewrite_card(checkpoint, change)
    with pytest.raises(InputError) as caught:
        load_checkpoint(checkpoint)
    assert caught.value.source == str(card_file)
    assert expected in caught.value.problem
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"architecture": "X",', "model card is not valid JSON"),
        ("[1, 2]", "model card must be a JSON object"),
        ("", "model card is not valid JSON"),
    ],
)
def test_card_that_is_not_a_json_object(checkpoint: Path, text: str, expected: str) -> None:
    card_file = checkpoint.with_suffix(".json")
    card_file.write_text(text)
    with pytest.raises(InputError, match=expected) as caught:
        load_checkpoint(checkpoint)
    assert caught.value.source == str(card_file) and "\n" not in str(caught.value)


def test_undecodable_card(checkpoint: Path) -> None:
    card_file = checkpoint.with_suffix(".json")
    card_file.write_bytes(b"\xff\xfe{not utf-8")
    with pytest.raises(InputError, match="model card is unreadable") as caught:
        load_checkpoint(checkpoint)
    assert caught.value.source == str(card_file)


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickles_are_refused(tmp_path: Path, protocol: int) -> None:
    path = tmp_path / "net.safetensors"
    path.write_bytes(pickle.dumps({"weight": [1.0, 2.0]}, protocol=protocol))
    path.with_suffix(".json").write_text(_card().to_json())
    with pytest.raises(InputError) as caught:  # protocols 0-1 fail as "not safetensors"
        load_checkpoint(path)
    assert caught.value.source == str(path)
    assert "pickle" in caught.value.problem or "not a readable safetensors" in caught.value.problem


def test_torch_save_zip_is_refused_as_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "net.safetensors"
    torch.save(_state(), path)
    path.with_suffix(".json").write_text(_card().to_json())
    with pytest.raises(InputError, match="is a pickle"):
        load_checkpoint(path)


def test_truncated_weights_are_refused(checkpoint: Path) -> None:
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="not a readable safetensors file") as caught:
        load_checkpoint(checkpoint)
    assert caught.value.source == str(checkpoint) and "\n" not in str(caught.value)


def test_save_checkpoint_wants_the_safetensors_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="safetensors"):
        save_checkpoint(_state(), tmp_path / "net.pt", _card())
    assert list(tmp_path.iterdir()) == []


def test_check_budget() -> None:
    limit = 2 * 2**30
    check_budget("small.png", 1024, "a 16 x 16 image", limit)
    check_budget("exact.png", limit, "an image at the limit", limit)
    with pytest.raises(InputError) as caught:
        check_budget("bomb.png", 12000 * 12000 * 4 * 16, "a 12000 x 12000 image", limit)
    assert caught.value.source == "bomb.png"
    assert caught.value.problem == (
        "a 12000 x 12000 image would take 8.6 GiB in memory (this reader's limit is 2.0 GiB)"
    )
    with pytest.raises(InputError):
        check_budget("one-over.fits", limit + 1, "a map", limit)
