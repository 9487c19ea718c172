"""Argument normalization shared by the layers: ints or sequences per spatial axis."""

from __future__ import annotations

from collections.abc import Sequence

IntOrSeq = int | Sequence[int]


def as_tuple(value: IntOrSeq, dims: int, name: str) -> tuple[int, ...]:
    """``value`` repeated for ``dims`` spatial axes, or checked to have one entry per axis."""
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    if len(value) != dims:
        raise ValueError(f"{name} needs {dims} values, got {value}")
    return value
