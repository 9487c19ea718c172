"""The bundled weights: card, loading, and what they do on held-out simulated calls."""

from __future__ import annotations

import numpy as np
import pytest

from convsuite.audio.data import simulate_call
from convsuite.audio.infer import EchoCanceller
from convsuite.audio.metrics import erle_db, pesq_wb
from convsuite.audio.model import D3AEC
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.hub import list_bundled


@pytest.fixture(scope="module")
def canceller() -> EchoCanceller:
    return EchoCanceller.from_pretrained()


def test_card_describes_the_weights(canceller: EchoCanceller) -> None:
    assert list_bundled("convsuite.audio") == ["d3aec_small"]
    card = canceller.network.card
    assert card.inputs["sample_rate"] == 16000 and card.inputs["hop"] == 256
    assert card.recipe.startswith("bash shared/recipes/audio_d3net_aec.sh WORK; its last stage")
    assert "aec train --preset small --out WORK/stage4" in card.recipe and "/tmp" not in card.recipe
    assert card.metrics["steps"] == 120  # 3 epochs of 40: the recipe's stage 4 in full
    assert card.metrics["val_loss"] < 0.1 and card.metrics["train_minutes"] <= 25
    assert canceller.network.config.causal and not canceller.network.training


def test_held_out_echo_is_suppressed(canceller: EchoCanceller) -> None:
    """Far-end single talk from talkers, rooms and echo paths outside the training draws."""
    gains = []
    for seed in range(2):
        call = simulate_call(seed, 3.0, scenario="fst", split="test", noisy=0.0)
        gains.append(erle_db(call.mic, canceller.process(call.mic, call.far)))
    assert min(gains) > 30.0, gains  # 53.6 and 42.2 dB with the bundled weights (42.6, 43.0 before)


def test_double_talk_keeps_the_near_end(canceller: EchoCanceller) -> None:
    call = simulate_call(2, 3.0, scenario="dt", split="test")
    near = canceller.process(call.mic, call.far)
    assert np.isfinite(near).all() and np.abs(near).max() > 0.1 * np.abs(call.near).max()
    assert pesq_wb(call.near, near) >= 1.0


def test_bad_checkpoint_is_refused(tmp_path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"\x80\x04garbage")
    with pytest.raises(InputError, match="pickle"):
        D3AEC.from_pretrained(path)
