"""Backbone registry: names -> (constructor, default config), after timm's ``models/_registry.py``.

A backbone module registers its presets with :func:`register_backbone`; users build them with
:func:`create_backbone`, overriding any constructor argument::

    model = create_backbone("convnext_atto", mixer="dcls", num_classes=10)

The default config of each preset (:func:`backbone_config`) is plain data, so a checkpoint's model
card can record exactly what was built.
"""

from __future__ import annotations

import copy
import difflib
import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from torch import nn

__all__ = [
    "BackboneEntry",
    "backbone_config",
    "create_backbone",
    "list_backbones",
    "register_backbone",
]

C = TypeVar("C", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class BackboneEntry:
    """One registered preset: the constructor and the keyword arguments it is called with."""

    name: str
    constructor: Callable[..., nn.Module]
    config: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(name: str, **config: Any) -> Callable[[C], C]:
    """Decorator registering ``constructor`` (a class or function) as preset ``name``.

    Stack it to register several presets of one class::

        @register_backbone("convnext_atto", depths=(2, 2, 6, 2), dims=(40, 80, 160, 320))
        @register_backbone("convnext_tiny", depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))
        class ConvNeXt(nn.Module): ...

    Args:
        name: the preset name, unique across the registry.
        **config: default keyword arguments for the constructor.

    Returns:
        A decorator returning the constructor unchanged.

    Raises:
        ValueError: if ``name`` is already registered.
    """

    def decorator(constructor: C) -> C:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = BackboneEntry(name, constructor, dict(config))
        return constructor

    return decorator


def _entry(name: str) -> BackboneEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown backbone {name!r}{hint} (list_backbones() gives all {len(_REGISTRY)})"
        ) from None


def backbone_config(name: str) -> dict[str, Any]:
    """A copy of the default keyword arguments of preset ``name``."""
    return copy.deepcopy(_entry(name).config)


def create_backbone(name: str, **overrides: Any) -> nn.Module:
    """Build preset ``name`` with its default config updated by ``overrides``.

    Args:
        name: a registered preset (see :func:`list_backbones`).
        **overrides: constructor arguments replacing or adding to the defaults, e.g.
            ``num_classes=10, mixer="dcls"``.

    Returns:
        The freshly initialized model.

    Raises:
        ValueError: for an unknown name (with close matches in the message).
    """
    entry = _entry(name)
    return entry.constructor(**{**copy.deepcopy(entry.config), **overrides})


def list_backbones(pattern: str = "*") -> list[str]:
    """Sorted names of the registered presets matching the shell-style ``pattern``."""
    return sorted(fnmatch.filter(_REGISTRY, pattern))
