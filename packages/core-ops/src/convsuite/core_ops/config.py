"""Architecture configs: frozen dataclasses that round-trip through JSON with validation.

Every network in convsuite is built from one config object (``HybridGNetConfig``, ``SkyReconConfig``,
...). Subclass :class:`ModelConfig`, give each field the paper's default and a type hint, and the
config gets :meth:`~ModelConfig.to_dict` (JSON-ready) and :meth:`~ModelConfig.from_dict`, which
refuses unknown keys and values of the wrong type with one line naming the source (a model card)::

    @dataclass(frozen=True)
    class SkyReconConfig(ModelConfig):
        widths: tuple[int, ...] = (64, 48, 32, 24, 16, 12)
        scale_uk: float = 100.0

Supported field types: ``int``, ``float``, ``bool``, ``str``, ``tuple[T, ...]``, ``tuple[T1, T2]``,
``Literal[...]``, ``X | None`` and nested :class:`ModelConfig` subclasses.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from convsuite.core_ops.errors import InputError

__all__ = ["ModelConfig"]

T = TypeVar("T", bound="ModelConfig")


class _Mismatch(Exception):
    """A value that does not fit its field's type (message: what was expected)."""


_SCALARS: dict[Any, tuple[str, str]] = {  # type -> (one value, several values), in plain words
    bool: ("true or false", "true/false values"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    str: ("a string", "strings"),
}


def _describe(hint: Any) -> str:
    """What a JSON value of type ``hint`` looks like, in plain words ("a list of 2 integers")."""
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in args)
    if hint is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            items = args[:1]
            count = ""
        else:
            items, count = args, f"{len(args)} "
        if len(set(items)) == 1 and items[0] in _SCALARS:
            return f"a list of {count}{_SCALARS[items[0]][1]}"
        return f"a list of {count or 'any number of '}values ({', '.join(map(_describe, items))})"
    if isinstance(hint, type) and issubclass(hint, ModelConfig):
        return f"a {hint.__name__} mapping"
    if hint in _SCALARS:
        return _SCALARS[hint][0]
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _convert(value: Any, hint: Any, source: str | None) -> Any:
    """``value`` as read from JSON, converted to ``hint`` (lists become tuples); _Mismatch if not.

    ``source`` names where the values came from in the errors of nested configs.
    """
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        for option in args:
            try:
                return _convert(value, option, source)
            except _Mismatch:
                continue
        raise _Mismatch(_describe(hint))
    if hint is type(None):
        if value is None:
            return None
        raise _Mismatch(_describe(hint))
    if origin is Literal:  # the type counts too: True is not 1, 1.0 is not 1
        if any(value == option and type(value) is type(option) for option in args):
            return value
        raise _Mismatch(_describe(hint))
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(_describe(hint))
        items = [args[0]] * len(value) if len(args) == 2 and args[1] is Ellipsis else args
        if len(items) != len(value):
            raise _Mismatch(_describe(hint))
        try:
            return tuple(
                _convert(item, arg, source) for item, arg in zip(value, items, strict=True)
            )
        except _Mismatch:
            raise _Mismatch(_describe(hint)) from None
    if isinstance(hint, type) and issubclass(hint, ModelConfig):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise _Mismatch(_describe(hint))
        return hint.from_dict(value, source=source)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch(_describe(hint))
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch(_describe(hint))
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch(_describe(hint))
    if hint is str:
        if isinstance(value, str):
            return value
        raise _Mismatch(_describe(hint))
    raise TypeError(f"ModelConfig does not support fields of type {hint!r}")


def _jsonable(value: Any) -> Any:
    if isinstance(value, ModelConfig):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_jsonable(item) for item in value]
    return value


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Base of every architecture config: JSON round trip with typed, strict validation."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values (tuples become lists); :meth:`from_dict` inverts it."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], values: Mapping[str, Any], source: str | None = None) -> T:
        """Rebuild a config from :meth:`to_dict` output (e.g. a model card's ``config``).

        Missing keys take the field's default.

        Args:
            values: field name -> JSON value.
            source: where the values came from (a card path), for the error message.

        Raises:
            InputError: unknown keys, a value of the wrong type, or the config's own checks
                (``__post_init__``) refused the values.
        """
        where = source or f"{cls.__name__} values"
        if not isinstance(values, Mapping):
            raise InputError(
                where, f"{cls.__name__} must be a mapping, got {type(values).__name__}"
            )
        hints = get_type_hints(cls, localns=_hint_namespace(cls))
        known = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                where,
                f"unknown {cls.__name__} keys {', '.join(map(repr, unknown))} "
                f"(known: {', '.join(sorted(known))})",
            )
        converted = {}
        for key, value in values.items():
            try:
                converted[key] = _convert(value, hints[key], source)
            except _Mismatch as expected:
                raise InputError(
                    where, f"{cls.__name__}.{key} must be {expected}, got {value!r}"
                ) from None
        try:
            return cls(**converted)
        except (TypeError, ValueError) as error:
            if isinstance(error, InputError):
                raise
            raise InputError(where, f"invalid {cls.__name__}: {error}") from None

    def replace(self: T, **changes: Any) -> T:
        """A copy with ``changes`` applied (validated like :meth:`from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **changes})


def _hint_namespace(cls: type) -> dict[str, Any]:
    """Names that string annotations of ``cls`` may use beyond its module's globals."""
    return {"Literal": Literal, "Any": Any, "typing": typing}
