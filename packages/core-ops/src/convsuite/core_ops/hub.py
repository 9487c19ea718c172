"""Pretrained networks: one registry of architectures and presets, one bundled-weights lookup, one
``from_pretrained``. After timm's ``_registry.py`` / ``_builder.py`` / ``_pretrained.py``.

A domain package declares its network once::

    @register_model("hybridgnet", presets={"paper": HybridGNetConfig(), "small": ..., "tiny": ...})
    class HybridGNet(Pretrained, nn.Module):
        config_class = HybridGNetConfig
        bundled_package = "convsuite.medseg"      # weights/<name>.safetensors + .json in its wheel
        default_weights = "hybridgnet_small"

        def __init__(self, config: HybridGNetConfig) -> None: ...

and lists the module under the entry-point group ``convsuite.models`` in its ``pyproject.toml``, so
that :func:`create_model` finds it without the caller importing the package::

    net = create_model("hybridgnet", preset="small")              # fresh weights
    net = create_model("hybridgnet", pretrained="hybridgnet_small")  # bundled weights, eval mode
    net = HybridGNet.from_pretrained("runs/hybridgnet.safetensors")  # your checkpoint

Loading checks the card's architecture against the class asked for, refuses pickles and card formats
newer than this convsuite, and reports any mismatch in one line naming the file.
"""

from __future__ import annotations

import copy
import difflib
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from convsuite.core_ops.config import ModelConfig
from convsuite.core_ops.errors import InputError
from convsuite.core_ops.io import ModelCard, load_checkpoint

if TYPE_CHECKING:
    import torch

__all__ = [
    "MODEL_ENTRY_POINT_GROUP",
    "ModelEntry",
    "Pretrained",
    "bundled_weights",
    "create_model",
    "list_bundled",
    "list_models",
    "list_presets",
    "model_config",
    "register_model",
    "resolve_weights",
]

MODEL_ENTRY_POINT_GROUP = "convsuite.models"
P = TypeVar("P", bound="Pretrained")
N = TypeVar("N", bound=type)


class Pretrained:
    """Mixin giving a network built from one :class:`ModelConfig` the shared pretrained API.

    The class sets ``config_class`` and, when its wheel ships weights, ``bundled_package`` and
    ``default_weights``; its ``__init__`` takes the config as its only required argument and keeps
    it as ``self.config``. :meth:`from_pretrained` sets ``self.card`` (None on a fresh network).
    """

    config_class: ClassVar[type[ModelConfig]]
    bundled_package: ClassVar[str | None] = None
    default_weights: ClassVar[str | None] = None
    config: ModelConfig
    card: ModelCard | None = None

    @classmethod
    def from_pretrained(
        cls: type[P], name_or_path: str | os.PathLike[str] | None = None, device: str = "cpu"
    ) -> P:
        """Bundled weights by name, or a ``.safetensors`` checkpoint (card beside it), in eval mode.

        Args:
            name_or_path: a bundled name (see :func:`list_bundled`), a checkpoint path, or None for
                ``default_weights``.
            device: where to put the network (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

        Raises:
            InputError: no such bundled name or file, a pickle, a broken or newer card, a card for
                another architecture, or weights that do not fit the card's config.
        """
        path = resolve_weights(cls, name_or_path)
        state_dict, card = load_checkpoint(path, device)
        check_card(cls, card, path)
        config = cls.config_class.from_dict(card.config, source=str(path.with_suffix(".json")))
        net = cls(config)  # type: ignore[call-arg]
        try:
            net.load_state_dict(state_dict)  # type: ignore[attr-defined]
        except RuntimeError as error:
            first = str(error).strip().splitlines()[-1].strip()
            raise InputError(path, f"weights do not fit the card's config ({first})") from None
        net.card = card
        return net.to(device).eval()  # type: ignore[attr-defined]

    def model_card(
        self,
        recipe: str,
        training_data: str,
        intended_use: str,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        files: Mapping[str, str] | None = None,
    ) -> ModelCard:
        """A card for this network's weights (architecture and config filled in)."""
        return ModelCard(
            architecture=type(self).__name__,
            config=self.config.to_dict(),
            recipe=recipe,
            training_data=training_data,
            inputs=dict(inputs or {}),
            outputs=dict(outputs or {}),
            metrics={k: float(v) for k, v in (metrics or {}).items()},
            intended_use=intended_use,
            files=dict(files or {}),
        )


def check_card(cls: type, card: ModelCard, path: str | os.PathLike[str]) -> None:
    """Refuse a card written for another architecture than ``cls`` (one line naming ``path``)."""
    if card.architecture != cls.__name__:
        raise InputError(path, f"holds a {card.architecture}, not a {cls.__name__}")


def _weights_folder(package: str):  # -> importlib.resources Traversable
    return resources.files(package) / "weights"


def list_bundled(package: str) -> list[str]:
    """Names of the checkpoints shipped in ``package``'s ``weights/`` folder, sorted."""
    folder = _weights_folder(package)
    if not folder.is_dir():
        return []
    return sorted(
        entry.name.removesuffix(".safetensors")
        for entry in folder.iterdir()
        if entry.name.endswith(".safetensors")
    )


def bundled_weights(package: str, name: str) -> Path:
    """Path of bundled checkpoint ``name`` (without suffix) of ``package``, e.g.
    ``bundled_weights("convsuite.cosmo", "skyrecon_nside64")``.

    Raises:
        InputError: ``package`` ships no checkpoint of that name (the message lists those it has).
    """
    path = Path(str(_weights_folder(package) / f"{name}.safetensors"))
    if not path.is_file():
        have = ", ".join(list_bundled(package)) or "none in this build"
        raise InputError(name, f"no bundled checkpoint of that name in {package} (bundled: {have})")
    return path


def resolve_weights(cls: type[Pretrained], name_or_path: str | os.PathLike[str] | None) -> Path:
    """The checkpoint file ``from_pretrained`` would load for ``name_or_path`` (see there)."""
    if name_or_path is None:
        if cls.default_weights is None or cls.bundled_package is None:
            raise InputError(cls.__name__, "ships no bundled weights: give a checkpoint path")
        return bundled_weights(cls.bundled_package, cls.default_weights)
    text = os.fspath(name_or_path)
    looks_like_path = isinstance(name_or_path, os.PathLike) or any(
        mark in text for mark in (os.sep, "/", ".safetensors")
    )
    if looks_like_path or cls.bundled_package is None or Path(text).is_file():
        path = Path(text)
        if not path.is_file():
            raise InputError(path, "checkpoint file does not exist")
        return path
    return bundled_weights(cls.bundled_package, text)


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture: the network class and its named configs."""

    name: str
    network: type
    presets: Mapping[str, ModelConfig]
    default_preset: str


_MODELS: dict[str, ModelEntry] = {}


def register_model(
    name: str, presets: Mapping[str, ModelConfig], default_preset: str | None = None
) -> Callable[[N], N]:
    """Class decorator registering a :class:`Pretrained` network under ``name`` with ``presets``.

    Args:
        name: registry name, lower case (``"hybridgnet"``, ``"skyrecon"``).
        presets: named configs, e.g. ``"paper"`` (the publication's), ``"small"``, ``"tiny"``
            (tests); each an instance of the class's ``config_class``.
        default_preset: the preset :func:`create_model` builds when none is named; default
            ``"paper"`` if present, else the first.

    Raises:
        ValueError: ``name`` is taken by another class, or a preset is not a ``config_class``.
    """

    def decorator(network: N) -> N:
        config_class = getattr(network, "config_class", None)
        bad = [k for k, v in presets.items() if not isinstance(v, config_class or ())]
        if config_class is None or bad:
            raise ValueError(f"{network.__name__}: presets {bad} are not its config_class")
        previous = _MODELS.get(name)
        if previous is not None and previous.network.__qualname__ != network.__qualname__:
            raise ValueError(f"model {name!r} is already registered by {previous.network}")
        default = default_preset or ("paper" if "paper" in presets else next(iter(presets)))
        _MODELS[name] = ModelEntry(name, network, dict(presets), default)
        return network

    return decorator


def _discover() -> None:
    """Import every module listed under the ``convsuite.models`` entry points (they register).

    A package whose module fails to import (half installed, a missing dependency) is skipped with a
    warning naming it, so the other packages' models stay usable.
    """
    for entry in entry_points(group=MODEL_ENTRY_POINT_GROUP):
        if entry.name in _MODELS:
            continue
        try:
            entry.load()
        except ImportError as error:
            warnings.warn(
                f"model {entry.name!r} ({entry.value}) is unavailable: {error}", stacklevel=3
            )


def _entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        _discover()
    try:
        return _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(name, _MODELS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        registered = ", ".join(sorted(_MODELS))
        raise InputError(name, f"no such model{hint} (registered: {registered})") from None


def list_models() -> list[str]:
    """Names of every installed model (from every installed convsuite package)."""
    _discover()
    return sorted(_MODELS)


def list_presets(name: str) -> list[str]:
    """Preset names of model ``name``."""
    return list(_entry(name).presets)


def model_config(name: str, preset: str | None = None, **overrides: Any) -> ModelConfig:
    """Config of ``preset`` of model ``name`` with fields replaced by ``overrides`` (validated).

    Raises:
        InputError: unknown model or preset, or an override the config refuses.
    """
    entry = _entry(name)
    preset = preset or entry.default_preset
    if preset not in entry.presets:
        raise InputError(
            preset, f"no preset of that name for {name} (presets: {', '.join(entry.presets)})"
        )
    config = copy.deepcopy(entry.presets[preset])
    return config.replace(**overrides) if overrides else config


def create_model(
    name: str,
    preset: str | None = None,
    pretrained: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    **overrides: Any,
) -> torch.nn.Module:
    """Build model ``name`` from a preset (fresh weights) or load ``pretrained`` weights.

    Args:
        name: a registered model (:func:`list_models`).
        preset: its preset (:func:`list_presets`); default: the model's default preset.
        pretrained: a bundled name or checkpoint path; then ``preset``/``overrides`` must be unset
            (the card says what to build).
        device: where to put the network.
        **overrides: config fields replacing the preset's.
    """
    entry = _entry(name)
    if pretrained is not None:
        if preset is not None or overrides:
            raise InputError(name, "give either pretrained weights or a preset with overrides")
        return entry.network.from_pretrained(pretrained, device=str(device))
    return entry.network(model_config(name, preset, **overrides)).to(device)
