"""ModelConfig: JSON round trip of every supported field type, strict validation naming the source."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Literal

import pytest

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.errors import InputError

CARD = "weights/net.json"


@dataclass(frozen=True)
class StemConfig(ModelConfig):
    width: int = 8
    kernel: tuple[int, int] = (3, 3)

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ValueError(f"width must be positive, got {self.width}")


@dataclass(frozen=True)
class NetConfig(ModelConfig):
    widths: tuple[int, ...] = (16, 32)
    scale: float = 1.0
    norm: Literal["batch", "layer"] = "batch"
    dropout: float | None = None
    name: str = "net"
    residual: bool = True
    groups: Literal[1, 2] = 1
    stem: StemConfig = field(default_factory=StemConfig)
    heads: tuple[StemConfig, ...] = ()

    def __post_init__(self) -> None:
        if any(width < 1 for width in self.widths):
            raise ValueError(f"widths must be positive, got {self.widths}")


@dataclass(frozen=True)
class ListConfig(ModelConfig):
    sizes: list[int] = field(default_factory=list)


def test_round_trip_through_json_keeps_every_field_and_type() -> None:
    config = NetConfig(
        widths=(4, 8, 16),
        scale=0.5,
        norm="layer",
        dropout=0.1,
        name="résumé",
        residual=False,
        stem=StemConfig(5, (1, 7)),
        heads=(StemConfig(2), StemConfig(3, (5, 5))),
    )
    values = config.to_dict()
    assert values == {
        "widths": [4, 8, 16],
        "scale": 0.5,
        "norm": "layer",
        "dropout": 0.1,
        "name": "résumé",
        "residual": False,
        "groups": 1,
        "stem": {"width": 5, "kernel": [1, 7]},
        "heads": [{"width": 2, "kernel": [3, 3]}, {"width": 3, "kernel": [5, 5]}],
    }
    back = NetConfig.from_dict(json.loads(json.dumps(values)), source=CARD)
    assert back == config
    assert isinstance(back.widths, tuple) and isinstance(back.stem.kernel, tuple)
    assert isinstance(back.stem, StemConfig) and isinstance(back.heads[1], StemConfig)
    assert hash(back) == hash(config)  # frozen, tuples all the way down


def test_missing_keys_take_defaults_and_ints_become_floats() -> None:
    assert NetConfig.from_dict({}) == NetConfig()
    config = NetConfig.from_dict({"scale": 2, "dropout": None, "groups": 2})
    assert config.scale == 2.0 and type(config.scale) is float
    assert config.dropout is None and config.groups == 2
    assert NetConfig.from_dict({"dropout": 1}).dropout == 1.0


def test_unknown_keys_are_refused_naming_the_source_and_the_known_keys() -> None:
    with pytest.raises(InputError) as caught:
        NetConfig.from_dict({"widhts": [8], "scale": 1.0, "zzz": 0}, source=CARD)
    error = caught.value
    assert error.source == CARD
    assert "'widhts', 'zzz'" in error.problem
    assert (
        "known: dropout, groups, heads, name, norm, residual, scale, stem, widths" in error.problem
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"residual": 1}, "NetConfig.residual must be true or false, got 1"),
        ({"widths": [4, True]}, "NetConfig.widths must be a list of integers, got [4, True]"),
        ({"widths": [4, 8.0]}, "NetConfig.widths must be a list of integers"),
        ({"widths": 4}, "NetConfig.widths must be a list of integers, got 4"),
        ({"scale": "1.0"}, "NetConfig.scale must be a number, got '1.0'"),
        ({"scale": True}, "NetConfig.scale must be a number, got True"),
        ({"name": 3}, "NetConfig.name must be a string, got 3"),
        ({"norm": "group"}, "NetConfig.norm must be one of 'batch', 'layer', got 'group'"),
        ({"dropout": "none"}, "NetConfig.dropout must be a number or null, got 'none'"),
        ({"groups": True}, "NetConfig.groups must be one of 1, 2, got True"),
        ({"groups": 2.0}, "NetConfig.groups must be one of 1, 2, got 2.0"),
        ({"stem": [8, [3, 3]]}, "NetConfig.stem must be a StemConfig mapping"),
        ({"stem": {"width": True}}, "StemConfig.width must be an integer, got True"),
        (
            {"stem": {"kernel": [3, 3, 3]}},
            "StemConfig.kernel must be a list of 2 integers, got [3, 3, 3]",
        ),
        ({"stem": {"kernel": [3, "3"]}}, "StemConfig.kernel must be a list of 2 integers"),
        ({"stem": {"width": 8, "depth": 2}}, "unknown StemConfig keys 'depth'"),
        ({"heads": [{"width": 0}]}, "invalid StemConfig: width must be positive, got 0"),
    ],
)
def test_wrong_types_are_refused_in_one_line_naming_the_source(values, expected) -> None:
    with pytest.raises(InputError) as caught:
        NetConfig.from_dict(values, source=CARD)
    assert caught.value.source == CARD  # nested configs too: the card, not "StemConfig values"
    assert expected in caught.value.problem
    assert "\n" not in str(caught.value)


def test_post_init_checks_become_input_errors() -> None:
    with pytest.raises(InputError) as caught:
        NetConfig.from_dict({"widths": [8, 0]}, source=CARD)
    assert caught.value.source == CARD
    assert caught.value.problem == "invalid NetConfig: widths must be positive, got (8, 0)"
    with pytest.raises(ValueError, match="widths must be positive"):
        NetConfig(widths=(0,))  # direct construction runs the same check


def test_not_a_mapping_and_unsupported_field_types() -> None:
    with pytest.raises(InputError, match="NetConfig must be a mapping, got list") as caught:
        NetConfig.from_dict([["widths", [1]]], source=CARD)  # type: ignore[arg-type]
    assert caught.value.source == CARD
    with pytest.raises(InputError) as unnamed:
        NetConfig.from_dict({"scale": "x"})
    assert unnamed.value.source == "NetConfig values"
    with pytest.raises(TypeError, match="does not support fields of type"):
        ListConfig.from_dict({"sizes": [1, 2]})  # a programming error, not bad input


def test_replace_validates_and_leaves_the_original_alone() -> None:
    config = NetConfig()
    changed = config.replace(widths=[8, 16, 32], stem={"width": 4}, dropout=0.2)
    assert changed.widths == (8, 16, 32) and changed.stem == StemConfig(4)
    assert changed.dropout == 0.2 and changed.norm == config.norm
    assert config == NetConfig()
    assert config.replace(stem=StemConfig(2, (1, 1))).stem == StemConfig(2, (1, 1))
    with pytest.raises(InputError, match="NetConfig.scale must be a number"):
        config.replace(scale="big")
    with pytest.raises(InputError, match="widths must be positive"):
        config.replace(widths=(0,))
    with pytest.raises(InputError, match="unknown NetConfig keys 'widht'"):
        config.replace(widht=(8,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.scale = 2.0  # type: ignore[misc]
