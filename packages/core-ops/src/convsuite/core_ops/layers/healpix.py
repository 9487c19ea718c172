"""Convolutions on the sphere through the 12 HEALPix base faces, padded from their true neighbours.

A HEALPix map of resolution ``nside`` in NESTED ordering is 12 base faces of ``nside x nside``
pixels (Gorski et al. 2005, ApJ 622, 759): pixel ``f * nside**2 + i`` of face ``f`` sits at the
face coordinates ``(x, y)`` whose bits interleave into ``i`` (x on the even bits, y on the odd
ones; x runs towards the face's north-east edge, y towards its north-west edge). Stacking the faces
as a (12, C, nside, nside) batch lets an ordinary ``conv2d`` work on the sphere with no projection:
each face keeps its equal-area pixels, and :class:`HEALPixPad` pads every face from the pixels that
really lie beyond its edges, so a convolution sees across face boundaries and has no seams.

Padding, as :func:`healpix_padding_index` builds it:

* Edge strips are exact. Depth 1 is healpy's own neighbour of the edge pixel (``get_all_neighbours``,
  whose eight slots are the face offsets (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1),
  (-1, -1)). Deeper rows continue straight into the neighbouring face, whose frame may be rotated.
* Corner blocks: where a face corner meets one diagonal face (four faces at a vertex), depth 1 is
  healpy's diagonal neighbour. At the eight vertices where only three faces meet (latitude
  +-41.8 deg) no such pixel exists; there, and at depth > 1 in every corner, the pixel is the one
  nearest to the point reflection of the mirrored in-face pixel through the face's corner pixel
  (a rotation by 180 deg about it), i.e. the best stand-in the sphere has.

The index tables are built once per ``(nside, padding)`` with healpy (the optional extra
``convsuite-core-ops[healpix]``) and cached; padding is then one gather of the border pixels.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch._subclasses.fake_tensor import unset_fake_temporarily

from convsuite.core_ops.layers.arguments import as_tuple

__all__ = [
    "HEALPixConv2d",
    "HEALPixPad",
    "faces_from_nest",
    "healpix_padding_index",
    "nest_from_faces",
    "nest_to_face_order",
]

N_FACES = 12
# get_all_neighbours slot -> (dx, dy) face offset (checked in the tests against pix2xyf).
_SLOT_OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


def _check_nside(nside: int) -> None:
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"nside must be a power of two >= 1, got {nside}")


def _spread_bits(values: np.ndarray) -> np.ndarray:
    """Move bit k of each value to bit 2k (the NESTED interleave)."""
    out = np.zeros_like(values)
    for bit in range(31):
        out |= ((values >> bit) & 1) << (2 * bit)
    return out


@functools.lru_cache(maxsize=16)
def nest_to_face_order(nside: int) -> np.ndarray:
    """(12 nside^2,) int64: the NESTED pixel shown at each face-raster position.

    Face-raster position ``f * nside**2 + x * nside + y`` is face ``f``, row ``x``, column ``y``;
    ``nest_map[nest_to_face_order(nside)]`` reshaped to (12, nside, nside) is the face stack.
    Pure bit arithmetic (no healpy); read-only.
    """
    _check_nside(nside)
    coordinate = np.arange(nside, dtype=np.int64)
    local = (_spread_bits(coordinate)[:, None] | (_spread_bits(coordinate)[None, :] << 1)).ravel()
    order = (np.arange(N_FACES, dtype=np.int64)[:, None] * nside * nside + local[None, :]).ravel()
    order.setflags(write=False)
    return order


@functools.lru_cache(maxsize=16)
def _face_to_nest_order(nside: int) -> np.ndarray:
    inverse = np.empty(N_FACES * nside * nside, dtype=np.int64)
    inverse[nest_to_face_order(nside)] = np.arange(inverse.size)
    inverse.setflags(write=False)
    return inverse


@contextlib.contextmanager
def _real_tensors() -> Iterator[None]:
    """Make the cached index tensors real, whatever mode the first call ran in: not inference
    tensors (later training needs autograd), not fake tensors (a first call under
    ``torch.export`` would otherwise cache placeholders that later eager calls get back)."""
    with torch.inference_mode(False), unset_fake_temporarily():
        yield


@functools.lru_cache(maxsize=32)
def _torch_order(table: object, nside: int) -> Tensor:
    with _real_tensors():
        return torch.from_numpy(np.array(table(nside)))  # type: ignore[operator]


def _nside_of(npix: int) -> int:
    nside = int(round(np.sqrt(npix / N_FACES)))
    if N_FACES * nside * nside != npix:
        raise ValueError(f"{npix} is not a HEALPix pixel count (12 nside^2)")
    _check_nside(nside)
    return nside


def faces_from_nest(maps: Tensor) -> Tensor:
    """NESTED maps (..., 12 nside^2) -> face stacks (..., 12, nside, nside) (a copy)."""
    nside = _nside_of(maps.shape[-1])
    order = _torch_order(nest_to_face_order, nside).to(maps.device)
    return maps.index_select(-1, order).unflatten(-1, (N_FACES, nside, nside))


def nest_from_faces(faces: Tensor) -> Tensor:
    """Face stacks (..., 12, nside, nside) -> NESTED maps (..., 12 nside^2) (a copy)."""
    if faces.dim() < 3 or faces.shape[-3] != N_FACES or faces.shape[-1] != faces.shape[-2]:
        raise ValueError(f"expected (..., 12, nside, nside), got {tuple(faces.shape)}")
    order = _torch_order(_face_to_nest_order, faces.shape[-1]).to(faces.device)
    return faces.flatten(-3).index_select(-1, order)


def _face_raster(healpy: object, nside: int, nest_pixels: np.ndarray) -> np.ndarray:
    x, y, face = healpy.pix2xyf(nside, nest_pixels, nest=True)  # type: ignore[attr-defined]
    return (face * nside + x) * nside + y


@functools.lru_cache(maxsize=32)
def healpix_padding_index(nside: int, padding: int) -> np.ndarray:
    """Where each pixel of the padded face stack comes from (see the module docstring).

    Args:
        nside: HEALPix resolution, a power of two.
        padding: pixels added on every side, ``0 <= padding <= nside``.

    Returns:
        (12, nside + 2 padding, nside + 2 padding) int64 face-raster positions
        (``f * nside**2 + x * nside + y``) into the unpadded stack; read-only. It holds
        ``12 (nside + 2 padding)^2`` entries: :class:`HEALPixPad` keeps only the border.
    """
    side = nside + 2 * padding
    index = np.empty((N_FACES, side, side), dtype=np.int64)
    interior = np.arange(N_FACES * nside * nside).reshape(N_FACES, nside, nside)
    index[:, padding : padding + nside, padding : padding + nside] = interior
    positions, sources = _border_index(nside, padding)
    index.reshape(-1)[positions] = sources
    index.setflags(write=False)
    return index


def _border_index(nside: int, padding: int) -> tuple[np.ndarray, np.ndarray]:
    """The padded stack's border: flat positions in (12, side, side) and their face-raster sources."""
    _check_nside(nside)
    if not 0 <= padding <= nside:
        raise ValueError(f"padding must be in [0, nside={nside}], got {padding}")
    if padding == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    import healpy

    n, p = nside, padding
    side = n + 2 * p
    positions: list[np.ndarray] = []
    sources: list[np.ndarray] = []

    def nest(fx: np.ndarray, fy: np.ndarray, face: int) -> np.ndarray:
        return healpy.xyf2pix(n, fx, fy, np.full(np.shape(fx), face), nest=True)

    def vectors(pixels: np.ndarray) -> np.ndarray:
        return np.stack(healpy.pix2vec(n, pixels, nest=True), 1)

    def put(face: int, row: np.ndarray, col: np.ndarray, source: np.ndarray) -> None:
        positions.append((face * side + row + p) * side + col + p)
        sources.append(source)

    # Edge strips: one neighbour step across the edge, then straight on inside the next face.
    along = np.arange(n)
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        slot = _SLOT_OFFSETS.index((dx, dy))
        edge_x = np.full(n, 0 if dx < 0 else n - 1) if dx else along
        edge_y = np.full(n, 0 if dy < 0 else n - 1) if dy else along
        for f in range(N_FACES):
            edge = nest(edge_x, edge_y, f)
            first = healpy.get_all_neighbours(n, edge, nest=True)[slot]
            fx, fy, ff = healpy.pix2xyf(n, first, nest=True)
            step_x, step_y = _inward_step(healpy, n, vectors(edge), fx, fy, ff)
            for depth in range(1, p + 1):
                px, py = fx + (depth - 1) * step_x, fy + (depth - 1) * step_y
                put(f, edge_x + depth * dx, edge_y + depth * dy, (ff * n + px) * n + py)

    # Corner blocks: healpy's diagonal neighbour at depth 1 where it exists, else the point
    # reflection of the mirrored in-face pixel through the corner pixel.
    depth = np.arange(1, p + 1)
    for corner_x, corner_y in ((0, 0), (0, n - 1), (n - 1, 0), (n - 1, n - 1)):
        sx, sy = (-1 if corner_x == 0 else 1), (-1 if corner_y == 0 else 1)
        cx = (corner_x + sx * depth[:, None] + 0 * depth[None, :]).ravel()
        cy = (corner_y + sy * depth[None, :] + 0 * depth[:, None]).ravel()
        mx, my = 2 * corner_x - cx, 2 * corner_y - cy
        for f in range(N_FACES):
            a = vectors(nest(np.full(cx.shape, corner_x), np.full(cy.shape, corner_y), f))
            b = vectors(nest(mx, my, f))
            reflected = 2 * np.sum(a * b, 1, keepdims=True) * a - b
            target = healpy.vec2pix(n, *reflected.T, nest=True)
            diagonal = healpy.get_all_neighbours(
                n, int(nest(np.array(corner_x), np.array(corner_y), f)), nest=True
            )[_SLOT_OFFSETS.index((sx, sy))]
            if diagonal >= 0:
                target[0] = diagonal  # depth (1, 1) is the first entry
            put(f, cx, cy, _face_raster(healpy, n, target))
    return np.concatenate(positions), np.concatenate(sources)


def _inward_step(
    healpy: object, n: int, edge: np.ndarray, fx: np.ndarray, fy: np.ndarray, ff: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel across an edge, the unit face step that continues straight away from the edge.

    ``edge`` holds the edge pixels' unit vectors (M, 3); the step chosen among the four axis steps
    is the one whose pixel lies nearest to the point reflection of the edge pixel through the
    first pixel across (so the walk keeps its direction).
    """
    if n == 1:
        return np.zeros_like(fx), np.zeros_like(fy)
    first = healpy.xyf2pix(n, fx, fy, ff, nest=True)  # type: ignore[attr-defined]
    a = np.stack(healpy.pix2vec(n, first, nest=True), 1)  # type: ignore[attr-defined]
    wanted = 2 * np.sum(a * edge, 1, keepdims=True) * a - edge
    best = np.full(len(fx), -np.inf)
    step_x, step_y = np.zeros_like(fx), np.zeros_like(fy)
    for sx, sy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        cx, cy = fx + sx, fy + sy
        valid = (cx >= 0) & (cx < n) & (cy >= 0) & (cy < n)
        pixels = healpy.xyf2pix(  # type: ignore[attr-defined]
            n, np.clip(cx, 0, n - 1), np.clip(cy, 0, n - 1), ff, nest=True
        )
        v = np.stack(healpy.pix2vec(n, pixels, nest=True), 1)  # type: ignore[attr-defined]
        score = np.where(valid, np.sum(v * wanted, 1), -np.inf)
        better = score > best
        best = np.where(better, score, best)
        step_x, step_y = np.where(better, sx, step_x), np.where(better, sy, step_y)
    return step_x, step_y


@functools.lru_cache(maxsize=64)
def _border_tables(nside: int, padding: int) -> tuple[Tensor, ...]:
    """The border as (face, row, col) destinations and (face, x, y) sources, int64 each."""
    positions, sources = _border_index(nside, padding)
    side = nside + 2 * padding
    destination = (positions // (side * side), (positions // side) % side, positions % side)
    source = (sources // (nside * nside), (sources // nside) % nside, sources % nside)
    with _real_tensors():
        return tuple(torch.from_numpy(np.ascontiguousarray(t)) for t in (*destination, *source))


class HEALPixPad(nn.Module):
    """Pad HEALPix face stacks from each face's true neighbours on the sphere.

    Args:
        padding: pixels added on each side of every face (<= nside).

    Shapes:
        input (B * 12, C, nside, nside), the 12 faces of each map consecutive (face order of
        :func:`faces_from_nest`) -> output (B * 12, C, nside + 2 padding, nside + 2 padding).
        Any Nside; the tables are built on first use per Nside and cached.
    """

    def __init__(self, padding: int) -> None:
        super().__init__()
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[0] % N_FACES or x.shape[-1] != x.shape[-2]:
            raise ValueError(
                f"expected (B * 12, C, nside, nside) face stacks, got {tuple(x.shape)}"
            )
        p = self.padding
        if p == 0:
            return x
        tables = [t.to(x.device) for t in _border_tables(x.shape[-1], p)]
        maps = torch.arange(x.shape[0] // N_FACES, device=x.device)[:, None] * N_FACES
        to_face, to_row, to_col, from_face, from_x, from_y = tables
        padded = F.pad(x, (p, p, p, p))
        # one gather and one scatter of the border pixels of every map (channels ride along)
        padded[
            (maps + to_face).flatten(), :, to_row.repeat(len(maps)), to_col.repeat(len(maps))
        ] = x[(maps + from_face).flatten(), :, from_x.repeat(len(maps)), from_y.repeat(len(maps))]
        return padded

    def extra_repr(self) -> str:
        return f"padding={self.padding}"


class HEALPixConv2d(nn.Conv2d):
    """A ``Conv2d`` on HEALPix face stacks, padded by :class:`HEALPixPad` ("same" size).

    Args:
        in_channels, out_channels: C_in, C_out.
        kernel_size: odd kernel side (int or pair).
        dilation: spacing of the taps; the padding is ``dilation * (kernel_size - 1) / 2``.
        bias: add a learned bias.

    Shapes:
        input (B * 12, C_in, nside, nside) -> output (B * 12, C_out, nside, nside).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        dilation: int = 1,
        bias: bool = True,
    ) -> None:
        kernel = as_tuple(kernel_size, 2, "kernel_size")
        if kernel[0] != kernel[1] or kernel[0] % 2 == 0:
            raise ValueError(f"kernel_size must be odd and square, got {kernel}")
        super().__init__(in_channels, out_channels, kernel, dilation=dilation, bias=bias)
        self.pad = HEALPixPad(dilation * (kernel[0] - 1) // 2)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(self.pad(x))
