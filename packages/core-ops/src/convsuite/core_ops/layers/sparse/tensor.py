"""SparseTensor: the coordinates and features of a batch of grids' active sites."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["SparseTensor"]

# Batch indices are only bounded by int64 when batch_size is not given.
_NO_BOUND = 1 << 62


class SparseTensor:
    """A batch of D-dimensional grids stored as the coordinates and features of their active sites.

    Args:
        coords: (N, 1 + D) int64; row ``(b, i_1, ..., i_D)`` is the batch index and grid index of
            one active site, ``0 <= i_d < spatial_shape[d]``. Rows must be unique (checked when a
            convolution or pooling layer first builds a rulebook for them).
        feats: (N, C) floating features, row ``n`` belonging to ``coords[n]``.
        spatial_shape: (S_1, ..., S_D), the size of the grid.
        batch_size: B; by default the largest batch index + 1. Pass it when trailing batch items
            may have no active site.

    Attributes: ``coords``, ``feats``, ``spatial_shape`` (tuple of D ints), ``batch_size`` (int).
    Treat them as read-only: layers return new tensors, and :meth:`replace_feats` makes one with new
    features on the same sites. Tensors on the same sites share one rulebook cache, so neighbour
    tables are built once per resolution.

    Example:
        >>> dense = torch.zeros(1, 2, 4, 4)
        >>> dense[0, :, 1, 2] = 1.0
        >>> x = SparseTensor.from_dense(dense)
        >>> x.coords.tolist(), tuple(x.feats.shape)
        ([[0, 1, 2]], (1, 2))
        >>> torch.equal(x.to_dense(), dense)
        True
    """

    __slots__ = ("coords", "feats", "spatial_shape", "batch_size", "_cache")

    def __init__(
        self,
        coords: Tensor,
        feats: Tensor,
        spatial_shape: Sequence[int],
        batch_size: int | None = None,
    ) -> None:
        spatial_shape = tuple(int(s) for s in spatial_shape)
        _check_sites(coords, feats, spatial_shape, batch_size)
        if batch_size is None:
            batch_size = int(coords[:, 0].max()) + 1 if coords.shape[0] else 0
        self.coords, self.feats = coords, feats
        self.spatial_shape, self.batch_size = spatial_shape, int(batch_size)
        self._cache: dict[tuple, Any] = {}

    @classmethod
    def _trusted(
        cls,
        coords: Tensor,
        feats: Tensor,
        spatial_shape: tuple[int, ...],
        batch_size: int,
        cache: dict[tuple, Any],
    ) -> SparseTensor:
        """A tensor built by a layer from checked parts: no validation, the given shared cache."""
        out = cls.__new__(cls)
        out.coords, out.feats, out.spatial_shape = coords, feats, spatial_shape
        out.batch_size, out._cache = batch_size, cache
        return out

    @property
    def spatial_dims(self) -> int:
        """D, the number of spatial axes."""
        return len(self.spatial_shape)

    def replace_feats(self, feats: Tensor) -> SparseTensor:
        """The same sites (and rulebook cache) with new (N, C') features, e.g. ``torch.tanh(x.feats)``."""
        if feats.dim() != 2 or feats.shape[0] != self.feats.shape[0]:
            raise ValueError(
                f"feats must be ({self.feats.shape[0]}, C) to match the sites, got {tuple(feats.shape)}"
            )
        return SparseTensor._trusted(
            self.coords, feats, self.spatial_shape, self.batch_size, self._cache
        )

    def to(self, *args: Any, **kwargs: Any) -> SparseTensor:
        """Move or cast the features like ``Tensor.to``; coordinates follow a device move."""
        feats = self.feats.to(*args, **kwargs)
        if feats.device == self.coords.device:
            return self.replace_feats(feats)
        return SparseTensor(
            self.coords.to(feats.device), feats, self.spatial_shape, self.batch_size
        )

    def to_dense(self) -> Tensor:
        """(B, C, *spatial_shape) with the features at the active sites and zeros elsewhere."""
        channels = self.feats.shape[1]
        dense = self.feats.new_zeros(self.batch_size, *self.spatial_shape, channels)
        dense = dense.index_put(tuple(self.coords.unbind(1)), self.feats)
        return dense.movedim(-1, 1)

    @classmethod
    def from_dense(cls, dense: Tensor) -> SparseTensor:
        """The sites of (B, C, *spatial) ``dense`` where any channel is nonzero, in raster order."""
        if dense.dim() < 3:
            raise ValueError(f"dense must be (B, C, *spatial), got {tuple(dense.shape)}")
        channels_last = dense.movedim(1, -1)
        active = (channels_last != 0).any(-1)
        coords = active.nonzero().contiguous()  # nonzero() is column-major; spconv needs rows
        feats = channels_last[active]
        return cls._trusted(coords, feats, tuple(dense.shape[2:]), dense.shape[0], {})

    def __repr__(self) -> str:
        return (
            f"SparseTensor(sites={self.coords.shape[0]}, channels={self.feats.shape[1]}, "
            f"spatial_shape={self.spatial_shape}, batch_size={self.batch_size}, "
            f"dtype={self.feats.dtype}, device={self.feats.device})"
        )


def _check_sites(
    coords: Tensor, feats: Tensor, spatial_shape: tuple[int, ...], batch_size: int | None
) -> None:
    dims = len(spatial_shape)
    if not isinstance(coords, Tensor) or coords.dtype != torch.int64:
        kind = coords.dtype if isinstance(coords, Tensor) else type(coords).__name__
        raise ValueError(f"coords must be an int64 tensor (N, 1 + D), got {kind}")
    if dims == 0 or any(s < 1 for s in spatial_shape):
        raise ValueError(f"spatial_shape must be D >= 1 positive sizes, got {spatial_shape}")
    if coords.dim() != 2 or coords.shape[1] != 1 + dims:
        raise ValueError(
            f"coords must be (N, 1 + {dims}) for spatial_shape {spatial_shape}, "
            f"got {tuple(coords.shape)}"
        )
    if not isinstance(feats, Tensor) or feats.dim() != 2 or feats.shape[0] != coords.shape[0]:
        shape = tuple(feats.shape) if isinstance(feats, Tensor) else type(feats).__name__
        raise ValueError(f"feats must be ({coords.shape[0]}, C) like coords, got {shape}")
    if not feats.is_floating_point():
        raise ValueError(f"feats must be floating point, got {feats.dtype}")
    if feats.device != coords.device:
        raise ValueError(f"coords on {coords.device} but feats on {feats.device}")
    if batch_size is not None and batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    if coords.shape[0] == 0:
        return
    low, high = (bound.tolist() for bound in torch.aminmax(coords, dim=0))
    upper = [batch_size if batch_size is not None else _NO_BOUND, *spatial_shape]
    if min(low) < 0 or any(h >= u for h, u in zip(high, upper, strict=True)):
        outside = ((coords < 0) | (coords >= torch.tensor(upper, device=coords.device))).any(1)
        row = int(outside.nonzero()[0, 0])
        raise ValueError(
            f"coords row {row} = {coords[row].tolist()} is outside batch_size {batch_size} / "
            f"spatial_shape {spatial_shape}"
        )
