"""Sparse convolution and pooling as functions, the dense references, and weight layouts.

The convolution is gather -> GEMM per tap -> scatter over a :class:`Rulebook`: the input rows of
all pairs are gathered by one ``index_select`` (pairs are grouped by tap), each tap's block is
multiplied by its (C_in, C_out) weight, and the products are summed into the output rows, by one
sparse CSR matmul on large inputs (2-3x faster on CPU than ``index_add_``) or ``index_add_`` on
small ones. A submanifold kernel's centre tap is a plain GEMM over all sites. The custom autograd
function keeps no gathered copies: backward gathers again. A submanifold layer's input gradient
is the same operation with the mirrored, transposed weights (site ``i`` feeds ``j`` through
offset ``d`` exactly when ``j`` feeds ``i`` through ``-d``), so it needs no second rulebook.

:func:`sparse_conv_reference` and :func:`sparse_max_pool_reference` are the slow, obvious paths
(densify, call torch's dense op, read the output sites) that the tests and the benchmark check
the fast path against.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from convsuite.core_ops.layers.arguments import IntOrSeq, as_tuple
from convsuite.core_ops.layers.factories import conv_function, max_pool_function
from convsuite.core_ops.layers.sparse.rulebook import (
    Rulebook,
    downsample_rulebook,
    submanifold_rulebook,
    window_map,
    window_rulebook,
)
from convsuite.core_ops.layers.sparse.tensor import SparseTensor
from convsuite.core_ops.runtime import keep_freed_memory_on_first_use

__all__ = [
    "sparse_conv",
    "sparse_conv_reference",
    "sparse_global_pool",
    "sparse_max_pool",
    "sparse_max_pool_reference",
    "submanifold_conv",
    "weight_from_spconv",
    "weight_to_spconv",
    "weight_to_torch",
]


def _gather(rows: Tensor, index: Tensor, fill: float) -> Tensor:
    """``rows`` (N, C) with a ``fill`` row appended at N, taken at (...) ``index`` -> (..., C)."""
    padded = torch.cat([rows, rows.new_full((1, rows.shape[1]), fill)])
    return padded.index_select(0, index.reshape(-1)).view(*index.shape, rows.shape[1])


def _per_tap(rulebook: Rulebook, left: Tensor, right: Callable[[int], Tensor]) -> Tensor:
    """(P, C') rows ``left[pairs of tap t] @ right(t)`` for every tap with pairs, one GEMM each.

    A loop of GEMMs beats ``torch.bmm`` here (it is 2-5x slower on CPU for these thin shapes), and
    taps need no padding to one length.
    """
    sizes = [b - a for a, b in itertools.pairwise(rulebook.bounds)]
    out = left.new_empty(left.shape[0], right(rulebook.taps[0]).shape[1])
    for tap, block, target in zip(rulebook.taps, left.split(sizes), out.split(sizes), strict=True):
        torch.mm(block, right(tap), out=target)
    return out


def _pair_sum(
    rows: Tensor, weight: Callable[[int], Tensor], rulebook: Rulebook, base: Tensor
) -> Tensor:
    """``base`` (n_out, C_out) plus ``rows[input] @ weight(tap)`` of every pair at its output."""
    products = _per_tap(rulebook, rulebook.gather_inputs(rows), weight)
    return rulebook.sum_to_outputs(products, base)


class _SparseConvFunction(torch.autograd.Function):
    """(N, C_in) feats, (K, C_in, C_out) weight, (C_out,) bias or None -> (M, C_out)."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        feats: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        rulebook: Rulebook,
    ) -> Tensor:
        c_out, centre = weight.shape[2], rulebook.centre
        if centre >= 0:
            centre_weight = weight[centre]
            if bias is None:
                out = feats @ centre_weight
            else:
                out = torch.addmm(bias, feats, centre_weight)
        elif bias is None:
            out = feats.new_zeros(rulebook.n_out, c_out)
        else:
            out = bias.repeat(rulebook.n_out, 1)  # own memory: the pair sums add in place
        if rulebook.num_pairs:
            out = _pair_sum(feats, weight.__getitem__, rulebook, out)
        ctx.save_for_backward(feats, weight)
        ctx.rulebook, ctx.has_bias = rulebook, bias is not None
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        feats, weight = ctx.saved_tensors
        rulebook: Rulebook = ctx.rulebook
        centre, pairs = rulebook.centre, rulebook.num_pairs
        grad_out = grad_out.contiguous()
        grad_feats = grad_weight = grad_bias = None
        # grad_out at each pair's output row: for the weight gradient and a strided input gradient.
        grad_at_pairs = None
        if pairs and (ctx.needs_input_grad[1] or (ctx.needs_input_grad[0] and centre < 0)):
            grad_at_pairs = grad_out.index_select(0, rulebook.outputs)
        if ctx.needs_input_grad[0]:
            if centre >= 0:
                grad_feats = grad_out @ weight[centre].T
                if pairs:  # the mirror tap's transposed weight, through the same rulebook
                    last = weight.shape[0] - 1
                    grad_feats = _pair_sum(
                        grad_out, lambda tap: weight[last - tap].T, rulebook, grad_feats
                    )
            elif pairs:
                per_pair = _per_tap(rulebook, grad_at_pairs, lambda tap: weight[tap].T)
                grad_feats = rulebook.sum_to_inputs(per_pair)
            else:
                grad_feats = torch.zeros_like(feats)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.zeros_like(weight)
            if centre >= 0:
                torch.mm(feats.T, grad_out, out=grad_weight[centre])
            if pairs:
                sizes = [b - a for a, b in itertools.pairwise(rulebook.bounds)]
                at_pairs = rulebook.gather_inputs(feats).split(sizes)
                for tap, left, right in zip(
                    rulebook.taps, at_pairs, grad_at_pairs.split(sizes), strict=True
                ):
                    torch.mm(left.T, right, out=grad_weight[tap])
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum(0)
        return grad_feats, grad_weight, grad_bias, None


def _check_weight(x: SparseTensor, weight: Tensor, kernel_size: tuple[int, ...]) -> None:
    expected = (math.prod(kernel_size), x.feats.shape[1])
    if weight.dim() != 3 or tuple(weight.shape[:2]) != expected:
        raise ValueError(
            f"weight must be (K={expected[0]}, C_in={expected[1]}, C_out) for kernel {kernel_size} "
            f"and {expected[1]} input channels, got {tuple(weight.shape)}"
        )


def submanifold_conv(
    x: SparseTensor, weight: Tensor, bias: Tensor | None, kernel_size: IntOrSeq
) -> SparseTensor:
    """Submanifold convolution: outputs at the input sites only, zero 'same' padding.

    Equals ``F.conv{D}d(x.to_dense(), weight_to_torch(weight, k), bias, padding=k // 2)`` read at
    the active sites.

    Args:
        x: (N, C_in) features on N sites.
        weight: (K, C_in, C_out), K = prod(kernel_size), taps row-major over the window.
        bias: (C_out,) or None.
        kernel_size: odd window size, an int or one per spatial axis.

    Returns:
        (N, C_out) features on the same sites, sharing ``x``'s rulebook cache.
    """
    keep_freed_memory_on_first_use()
    kernel = as_tuple(kernel_size, x.spatial_dims, "kernel_size")
    if any(k % 2 == 0 for k in kernel):
        raise ValueError(f"a submanifold kernel must be odd, got {kernel}")
    _check_weight(x, weight, kernel)
    rulebook = submanifold_rulebook(x, kernel)
    return x.replace_feats(_SparseConvFunction.apply(x.feats, weight, bias, rulebook))


def sparse_conv(
    x: SparseTensor,
    weight: Tensor,
    bias: Tensor | None,
    kernel_size: IntOrSeq,
    stride: IntOrSeq,
) -> SparseTensor:
    """Strided sparse convolution, no padding: an output is active when its window holds a site.

    Equals ``F.conv{D}d(x.to_dense(), weight_to_torch(weight, k), bias, stride)`` at the output
    sites.

    Args:
        x: (N, C_in) features on N sites of a (S_1, ..., S_D) grid.
        weight: (K, C_in, C_out), K = prod(kernel_size), taps row-major over the window.
        bias: (C_out,) or None.
        kernel_size: window, an int or one per axis.
        stride: an int or one per axis.

    Returns:
        (M, C_out) features on the M output sites of the ``(S - kernel) // stride + 1`` grid.
        With ``kernel == stride`` the rulebook comes from :func:`window_rulebook` (no (K, M)
        table), and one input channel is computed as an embedding bag (:func:`_window_embedding`).
    """
    keep_freed_memory_on_first_use()
    dims = x.spatial_dims
    kernel, step = as_tuple(kernel_size, dims, "kernel_size"), as_tuple(stride, dims, "stride")
    _check_weight(x, weight, kernel)
    if kernel == step:
        if weight.shape[1] == 1:
            return _window_embedding(x, weight, bias, step)
        out, rulebook = window_rulebook(x, step)
    else:
        out, rulebook, _ = downsample_rulebook(x, kernel, step)
    return out.replace_feats(_SparseConvFunction.apply(x.feats, weight, bias, rulebook))


def _window_embedding(
    x: SparseTensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, ...]
) -> SparseTensor:
    """A ``kernel == stride`` convolution of one-channel features as an embedding bag.

    Output ``o`` is ``sum_i feats_i * weight[tap_i]`` over the sites ``i`` in its window: one
    gather of (N, C_out) weight rows and one ``index_add`` (autograd differentiates both), with no
    per-tap GEMMs (a stem with K = 256 taps and one input channel would run 256 tiny ones).
    """
    windows = window_map(x, stride)
    feats = x.feats if windows.sources is None else x.feats.index_select(0, windows.sources)
    values = weight[:, 0, :].index_select(0, windows.taps) * feats
    out = values.new_zeros(windows.out.coords.shape[0], weight.shape[2])
    out = out.index_add(0, windows.out_rows, values)
    if bias is not None:
        out = out + bias
    return windows.out.replace_feats(out)


def sparse_max_pool(x: SparseTensor, kernel_size: IntOrSeq, stride: IntOrSeq) -> SparseTensor:
    """Max over the active sites of each window (inactive sites are not zeros).

    Returns:
        (M, C) on the output sites of :func:`sparse_conv` with the same kernel and stride.
    """
    dims = x.spatial_dims
    kernel, step = as_tuple(kernel_size, dims, "kernel_size"), as_tuple(stride, dims, "stride")
    out, _, table = downsample_rulebook(x, kernel, step)
    return out.replace_feats(_gather(x.feats, table, fill=-math.inf).max(0).values)


def sparse_global_pool(x: SparseTensor, mode: str = "avg") -> Tensor:
    """(B, C): mean ("avg") or max ("max") of each batch item's site features; 0 with no sites."""
    batch, feats = x.coords[:, 0], x.feats
    out = feats.new_zeros(x.batch_size, feats.shape[1])
    if mode == "max":
        index = batch[:, None].expand_as(feats)
        return out.scatter_reduce(0, index, feats, "amax", include_self=False)
    if mode != "avg":
        raise ValueError(f"mode must be 'avg' or 'max', got {mode!r}")
    counts = torch.bincount(batch, minlength=x.batch_size).clamp_(min=1)
    return out.index_add(0, batch, feats) / counts[:, None].to(feats.dtype)


# ------------------------------------------------------------------------------------------------
# The slow, obvious paths the tests and the benchmark compare against.


def _dense_sites(x: SparseTensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """(M, 1 + D) outputs whose window holds an active input: a ones-kernel conv of the occupancy."""
    ones = torch.ones_like(x.feats[:, :1], dtype=torch.float64)
    occupancy = x.replace_feats(ones).to_dense()
    window = torch.ones(1, 1, *kernel, dtype=torch.float64, device=ones.device)
    return (conv_function(x.spatial_dims)(occupancy, window, stride=stride)[:, 0] > 0).nonzero()


def sparse_conv_reference(
    x: SparseTensor,
    weight: Tensor,
    bias: Tensor | None,
    kernel_size: IntOrSeq,
    stride: IntOrSeq = 1,
    submanifold: bool = True,
) -> SparseTensor:
    """Densify, ``F.conv{D}d``, and read the output sites: the reference for both convolutions.

    Output sites are the input sites (submanifold, padding ``kernel // 2``) or, found independently
    of the rulebook, the outputs whose window holds an active input (strided, no padding).
    """
    dims = x.spatial_dims
    kernel, step = as_tuple(kernel_size, dims, "kernel_size"), as_tuple(stride, dims, "stride")
    dense_weight = weight_to_torch(weight, kernel)
    if submanifold:
        padding = tuple(k // 2 for k in kernel)
        dense = conv_function(dims)(x.to_dense(), dense_weight, bias, padding=padding)
        return x.replace_feats(dense.movedim(1, -1)[tuple(x.coords.unbind(1))])
    dense = conv_function(dims)(x.to_dense(), dense_weight, bias, stride=step)
    coords = _dense_sites(x, kernel, step)
    feats = dense.movedim(1, -1)[tuple(coords.unbind(1))]
    return SparseTensor(coords, feats, tuple(dense.shape[2:]), x.batch_size)


def sparse_max_pool_reference(
    x: SparseTensor, kernel_size: IntOrSeq, stride: IntOrSeq
) -> SparseTensor:
    """Densify with -inf at inactive sites, ``F.max_pool{D}d``, read the output sites."""
    dims = x.spatial_dims
    kernel, step = as_tuple(kernel_size, dims, "kernel_size"), as_tuple(stride, dims, "stride")
    filled = x.feats.new_full((x.batch_size, *x.spatial_shape, x.feats.shape[1]), -math.inf)
    filled = filled.index_put(tuple(x.coords.unbind(1)), x.feats).movedim(-1, 1)
    dense = max_pool_function(dims)(filled, kernel, step)
    coords = _dense_sites(x, kernel, step)
    feats = dense.movedim(1, -1)[tuple(coords.unbind(1))]
    return SparseTensor(coords, feats, tuple(dense.shape[2:]), x.batch_size)


# ------------------------------------------------------------------------------------------------
# Weight layouts.


def weight_to_torch(weight: Tensor, kernel_size: Sequence[int]) -> Tensor:
    """(K, C_in, C_out) -> torch's (C_out, C_in, *kernel_size)."""
    _, c_in, c_out = weight.shape
    return weight.permute(2, 1, 0).reshape(c_out, c_in, *kernel_size)


def weight_to_spconv(weight: Tensor, kernel_size: Sequence[int]) -> Tensor:
    """(K, C_in, C_out) -> spconv 2.x's (C_out, *kernel_size, C_in)."""
    _, c_in, c_out = weight.shape
    return weight.permute(2, 0, 1).reshape(c_out, *kernel_size, c_in)


def weight_from_spconv(weight: Tensor) -> Tensor:
    """spconv 2.x's (C_out, *kernel_size, C_in) -> (K, C_in, C_out)."""
    c_out, c_in = weight.shape[0], weight.shape[-1]
    return weight.reshape(c_out, -1, c_in).permute(1, 2, 0).contiguous()
