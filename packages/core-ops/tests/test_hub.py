"""hub.py: presets registry, create_model, from_pretrained by path and by bundled name, and the
entry-point discovery of every installed convsuite model.

A toy network is registered per test and removed from the registry (``hub._MODELS``) afterwards,
so nothing leaks into other tests; its bundled weights live in a throw-away package put on
``sys.path``.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Literal

import pytest
import torch
from torch import Tensor, nn

from convsuite.core_ops import hub
from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.hub import (
    MODEL_ENTRY_POINT_GROUP,
    Pretrained,
    bundled_weights,
    create_model,
    list_bundled,
    list_models,
    list_presets,
    model_config,
    register_model,
)
from convsuite.core_ops.io import InputError, ModelCard, load_checkpoint, save_checkpoint

if sys.version_info >= (3, 11):
    import tomllib
else:  # `build` (a test extra) brings tomli on 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[3]
BUNDLE = "convsuite_toy_bundle"  # the throw-away package holding weights/


@dataclass(frozen=True)
class ToyConfig(ModelConfig):
    channels: int = 4
    kernel_size: int = 3
    activation: Literal["relu", "tanh"] = "relu"

    def __post_init__(self) -> None:
        if self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {self.kernel_size}")


PRESETS = {"paper": ToyConfig(), "tiny": ToyConfig(channels=2)}


class ToyNet(Pretrained, nn.Module):
    """(N, 1, H, W) -> (N, 1, H, W): conv, activation, 1x1 conv."""

    config_class = ToyConfig
    bundled_package = BUNDLE
    default_weights = "toy_small"

    def __init__(self, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.conv = nn.Conv2d(1, config.channels, config.kernel_size, padding="same")
        self.head = nn.Conv2d(config.channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        act = torch.relu if self.config.activation == "relu" else torch.tanh
        return self.head(act(self.conv(x)))


class OtherNet(ToyNet):
    """Same config, another architecture name."""


class Unbundled(ToyNet):
    bundled_package = None
    default_weights = None


@pytest.fixture
def registry() -> Iterator[dict]:
    """The registry with ``toynet`` added; models registered by this file are removed afterwards.

    Domain models that a test's discovery imported stay: their modules are imported for good and
    would not register again.
    """
    register_model("toynet", presets=PRESETS)(ToyNet)
    yield hub._MODELS
    for name, entry in list(hub._MODELS.items()):
        if entry.network.__module__ in (ToyNet.__module__, "convsuite_toy_models"):
            del hub._MODELS[name]


def _input() -> Tensor:
    return torch.randn(2, 1, 9, 9, generator=torch.Generator().manual_seed(0))


def _save(net: ToyNet, path: Path, **card_changes) -> Path:
    card = net.model_card(
        recipe="pytest", training_data="none", intended_use="tests", inputs={"channels": 1}
    )
    for key, value in card_changes.items():
        setattr(card, key, value)
    return save_checkpoint(net.state_dict(), path, card)


@pytest.fixture
def bundle(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """Package ``convsuite_toy_bundle`` with ``weights/toy_small`` and ``weights/toy_wide``."""
    root = tmp_path_factory.mktemp("site")
    package = root / BUNDLE
    (package / "weights").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    torch.manual_seed(1)
    _save(ToyNet(PRESETS["tiny"]), package / "weights" / "toy_small.safetensors")
    _save(ToyNet(ToyConfig(channels=6)), package / "weights" / "toy_wide.safetensors")
    (package / "weights" / "README.txt").write_text("not a checkpoint")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.delitem(sys.modules, BUNDLE, raising=False)
    yield package
    sys.modules.pop(BUNDLE, None)


def test_create_model_by_preset_and_with_overrides(registry) -> None:
    assert list_presets("toynet") == ["paper", "tiny"]
    default = create_model("toynet")
    assert isinstance(default, ToyNet) and default.config == ToyConfig()  # "paper" is the default
    assert default.card is None
    tiny = create_model("toynet", preset="tiny")
    assert tiny.config == ToyConfig(channels=2)
    assert tiny.conv.weight.shape == (2, 1, 3, 3)
    wide = create_model("toynet", preset="tiny", kernel_size=5, activation="tanh")
    assert wide.config == ToyConfig(channels=2, kernel_size=5, activation="tanh")
    assert wide.conv.weight.shape == (2, 1, 5, 5)
    assert model_config("toynet", "tiny", channels=3) == ToyConfig(channels=3)
    assert PRESETS["tiny"] == ToyConfig(channels=2)  # the preset itself is not modified


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"kernel_size": 4}, "invalid ToyConfig: kernel_size must be odd, got 4"),
        ({"activation": "gelu"}, "ToyConfig.activation must be one of 'relu', 'tanh'"),
        ({"chanels": 8}, "unknown ToyConfig keys 'chanels'"),
        ({"channels": "8"}, "ToyConfig.channels must be an integer"),
    ],
)
def test_overrides_are_validated(registry, overrides, expected) -> None:
    with pytest.raises(InputError, match=expected):
        create_model("toynet", preset="tiny", **overrides)


def test_unknown_model_and_preset_messages(registry) -> None:
    with pytest.raises(InputError) as caught:
        create_model("toynett")
    assert caught.value.source == "toynett"
    assert "no such model; did you mean toynet?" in caught.value.problem
    assert "toynet" in caught.value.problem.split("registered: ")[1]
    with pytest.raises(InputError) as caught:
        create_model("toynet", preset="huge")
    assert str(caught.value) == "huge: no preset of that name for toynet (presets: paper, tiny)"
    with pytest.raises(InputError, match="either pretrained weights or a preset"):
        create_model("toynet", preset="tiny", pretrained="toy_small")
    with pytest.raises(InputError, match="either pretrained weights or a preset"):
        create_model("toynet", pretrained="toy_small", channels=3)


def test_register_model_refusals(registry) -> None:
    with pytest.raises(ValueError, match="are not its config_class"):
        register_model("badpresets", presets={"paper": {"channels": 2}})(ToyNet)

    class Impostor(ToyNet):
        pass

    with pytest.raises(ValueError, match="'toynet' is already registered"):
        register_model("toynet", presets=PRESETS)(Impostor)
    register_model("toynet", presets=PRESETS)(ToyNet)  # the same class again (a reload) is fine
    register_model("toytiny", presets=PRESETS, default_preset="tiny")(ToyNet)
    assert create_model("toytiny").config == PRESETS["tiny"]


def test_from_pretrained_by_path_gives_identical_outputs(registry, tmp_path) -> None:
    torch.manual_seed(0)
    net = create_model("toynet", preset="tiny", activation="tanh").eval()
    with torch.no_grad():
        before = net(_input())
    path = _save(net, tmp_path / "runs" / "toy.safetensors")
    for spelling in (path, str(path)):
        loaded = ToyNet.from_pretrained(spelling)
        assert not loaded.training
        assert loaded.config == net.config
        assert loaded.card == load_checkpoint(path)[1]
        assert loaded.card.architecture == "ToyNet" and loaded.card.inputs == {"channels": 1}
        with torch.no_grad():
            assert torch.equal(loaded(_input()), before)
    via_registry = create_model("toynet", pretrained=path)
    with torch.no_grad():
        assert torch.equal(via_registry(_input()), before)


def test_from_pretrained_by_bundled_name(registry, bundle) -> None:
    assert list_bundled(BUNDLE) == ["toy_small", "toy_wide"]
    assert bundled_weights(BUNDLE, "toy_wide") == bundle / "weights" / "toy_wide.safetensors"
    default = ToyNet.from_pretrained()
    small = ToyNet.from_pretrained("toy_small")
    wide = create_model("toynet", pretrained="toy_wide")
    assert default.config == small.config == ToyConfig(channels=2)
    assert wide.config == ToyConfig(channels=6)
    state, _ = load_checkpoint(bundle / "weights" / "toy_small.safetensors")
    for name, tensor in small.state_dict().items():
        assert torch.equal(tensor, state[name])
    with torch.no_grad():
        assert torch.equal(default(_input()), small(_input()))

    with pytest.raises(InputError) as caught:
        ToyNet.from_pretrained("toy_huge")
    assert str(caught.value) == (
        f"toy_huge: no bundled checkpoint of that name in {BUNDLE} (bundled: toy_small, toy_wide)"
    )


def test_a_path_that_does_not_exist_and_no_default_weights(registry, tmp_path) -> None:
    missing = tmp_path / "absent.safetensors"
    with pytest.raises(InputError, match="checkpoint file does not exist") as caught:
        ToyNet.from_pretrained(missing)
    assert caught.value.source == str(missing)
    with pytest.raises(InputError, match="ships no bundled weights: give a checkpoint path"):
        Unbundled.from_pretrained()
    with pytest.raises(InputError, match="checkpoint file does not exist"):
        Unbundled.from_pretrained("toy_small")  # no bundle: a bare name is a path


def test_another_architecture_is_refused_naming_the_file(registry, tmp_path) -> None:
    path = _save(OtherNet(ToyConfig()), tmp_path / "other.safetensors")
    with pytest.raises(InputError) as caught:
        ToyNet.from_pretrained(path)
    assert str(caught.value) == f"{path}: holds a OtherNet, not a ToyNet"


def test_weights_that_do_not_fit_the_config_are_refused_in_one_line(registry, tmp_path) -> None:
    path = _save(ToyNet(ToyConfig(channels=2)), tmp_path / "toy.safetensors")
    card_file = path.with_suffix(".json")
    values = json.loads(card_file.read_text())
    values["config"]["channels"] = 5
    card_file.write_text(json.dumps(values))
    with pytest.raises(InputError) as caught:
        ToyNet.from_pretrained(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: weights do not fit the card's config (")
    assert "size mismatch" in message and "\n" not in message

    values["config"]["kernel_size"] = 2  # a config the class refuses: named by its card
    card_file.write_text(json.dumps(values))
    with pytest.raises(InputError) as caught:
        ToyNet.from_pretrained(path)
    assert caught.value.source == str(card_file)
    assert "kernel_size must be odd" in caught.value.problem


def test_model_card_describes_the_network(registry) -> None:
    net = create_model("toynet", preset="tiny")
    card = net.model_card(
        recipe="toy-train --seed 0",
        training_data="noise",
        intended_use="tests",
        outputs={"unit": "a.u."},
        metrics={"val_loss": torch.tensor(0.25).item(), "epochs": 3},
        files={"stats": "toy.stats.json"},
    )
    assert isinstance(card, ModelCard)
    assert card.architecture == "ToyNet"
    assert card.config == {"channels": 2, "kernel_size": 3, "activation": "relu"}
    assert card.metrics == {"val_loss": 0.25, "epochs": 3.0}
    assert type(card.metrics["epochs"]) is float
    assert ModelCard.from_json(card.to_json()) == card


def test_entry_point_discovery(registry, tmp_path, monkeypatch) -> None:
    module = tmp_path / "convsuite_toy_models.py"
    module.write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            from torch import nn

            from convsuite.core_ops.config import ModelConfig
            from convsuite.core_ops.hub import Pretrained, register_model


            @dataclass(frozen=True)
            class PluginConfig(ModelConfig):
                width: int = 4


            @register_model("pluginnet", presets={"paper": PluginConfig(), "tiny": PluginConfig(1)})
            class PluginNet(Pretrained, nn.Module):
                config_class = PluginConfig

                def __init__(self, config: PluginConfig) -> None:
                    super().__init__()
                    self.config = config
                    self.linear = nn.Linear(config.width, 1)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "convsuite_toy_models", raising=False)
    found = [EntryPoint("pluginnet", "convsuite_toy_models", MODEL_ENTRY_POINT_GROUP)]
    asked = []

    def fake_entry_points(group: str):
        asked.append(group)
        return found

    monkeypatch.setattr(hub, "entry_points", fake_entry_points)
    assert "pluginnet" not in registry
    assert "pluginnet" in list_models() and "toynet" in list_models()
    assert asked and set(asked) == {MODEL_ENTRY_POINT_GROUP}
    net = create_model("pluginnet", preset="tiny")
    assert type(net).__name__ == "PluginNet" and net.linear.in_features == 1
    monkeypatch.delitem(sys.modules, "convsuite_toy_models")


def _declared_models() -> set[str]:
    """Model names every package of this repository declares under ``convsuite.models``."""
    names = set()
    for pyproject in ROOT.glob("packages/*/pyproject.toml"):
        with open(pyproject, "rb") as handle:
            project = tomllib.load(handle)["project"]
        names |= set(project.get("entry-points", {}).get(MODEL_ENTRY_POINT_GROUP, {}))
    return names


def test_list_models_finds_every_declared_domain_model() -> None:
    """The real entry points: each installed one registers a model of its name, and every name
    declared in a pyproject.toml is installed (a stale install would miss it)."""
    from importlib.metadata import entry_points

    installed = {entry.name for entry in entry_points(group=MODEL_ENTRY_POINT_GROUP)}
    assert _declared_models() <= installed, "reinstall: pip install --no-deps -e packages/<name>"
    models = list_models()
    assert installed <= set(models)
    for name in installed:
        assert list_presets(name), name


def test_a_broken_entry_point_does_not_hide_the_other_models(monkeypatch) -> None:
    """A half-installed package's model module is skipped with a warning naming it."""
    from importlib.metadata import EntryPoint

    import convsuite.core_ops.hub as hub

    real = hub.entry_points(group=hub.MODEL_ENTRY_POINT_GROUP)
    broken = EntryPoint("ghost", "convsuite.no_such_package.model", hub.MODEL_ENTRY_POINT_GROUP)
    monkeypatch.setattr(hub, "entry_points", lambda group: [*real, broken])
    with pytest.warns(UserWarning, match="ghost"):
        names = hub.list_models()
    assert "skyrecon" in names and "ghost" not in names
