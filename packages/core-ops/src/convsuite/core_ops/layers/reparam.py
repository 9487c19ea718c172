"""Structural re-parameterization of large depthwise kernels (UniRepLKNet's Dilated Reparam Block).

Training time: one large depthwise kernel and several dilated small depthwise kernels, each followed
by BatchNorm, summed. Inference time: one large depthwise conv with bias, computing the same function
(in eval mode). :func:`reparameterize_model` converts any model holding such blocks, and
:func:`assert_reparam_equivalent` is the equivalence check shipped as API (after e3nn's
``assert_equivariant``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import skip_init
from torch.nn.utils.fusion import fuse_conv_bn_weights

logger = logging.getLogger(__name__)

# (branch kernel sizes, branch dilations) per large kernel size, from the official code
# (AILab-CVC/UniRepLKNet, unireplknet.py, DilatedReparamBlock). The first branch (dilation 1) is the
# parallel small kernel of RepLKNet; the others are dilated 3x3..9x9 kernels.
_OFFICIAL_BRANCHES: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)),
    15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)),
    11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)),
    7: ((5, 3, 3), (1, 2, 3)),
    5: ((3, 3), (1, 2)),
}


def default_branches(kernel_size: int) -> tuple[tuple[int, int], ...]:
    """The (small kernel size, dilation) pairs of the parallel branches for a large kernel size.

    Kernel sizes 5..17 (odd) follow the official UniRepLKNet table. Larger odd sizes (e.g. 31, the
    RepLKNet size) are our extension, not the paper's: keep the K=17 branch kernels (5, 9, 3, 3, 3)
    and stretch the dilations of all but the first (undilated 5x5) branch by (K - 1) / 16, rounded
    down, so that the branches keep covering the same fraction of the large kernel. For K=31 this
    gives dilations (1, 3, 7, 9, 13), i.e. equivalent kernels 5, 25, 15, 19, 27, all within 31.

    Args:
        kernel_size: the large kernel size K, odd and >= 5.

    Raises:
        ValueError: for even K or K < 5 (the official block has no branch table below 5).
    """
    if kernel_size % 2 == 0 or kernel_size < 5:
        raise ValueError(f"DilatedReparamConv2d needs an odd kernel_size >= 5, got {kernel_size}")
    if kernel_size in _OFFICIAL_BRANCHES:
        sizes, dilations = _OFFICIAL_BRANCHES[kernel_size]
    else:
        sizes, base = _OFFICIAL_BRANCHES[17]
        scale = (kernel_size - 1) / 16
        dilations = (base[0], *(int(r * scale) for r in base[1:]))
    return tuple(zip(sizes, dilations, strict=True))


def _dilate_kernel(weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """The undilated kernel equal to ``weight`` at ``dilation``: zeros inserted between the taps.

    (C, 1, k, k) -> (C, 1, r(k-1)+1, r(k-1)+1).
    """
    k = weight.shape[-1]
    size = dilation * (k - 1) + 1
    out = weight.new_zeros(*weight.shape[:-2], size, size)
    out[..., ::dilation, ::dilation] = weight
    return out


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the conv equal to ``bn(conv(x))`` in eval mode."""
    weight, bias = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
    )
    return weight.detach(), bias.detach()


class DilatedReparamConv2d(nn.Module):
    """Dilated Reparam Block: a large depthwise conv plus parallel dilated small depthwise convs.

    Follows Ding et al., "UniRepLKNet: A Universal Perception Large-Kernel ConvNet for Audio, Video,
    Point Cloud, Time-Series and Image Recognition", CVPR 2024, Sec. 3 and Fig. 2 (Dilated Reparam
    Block), with the branch table of the official code (see :func:`default_branches`).

    Training form: ``BN(DW_K(x)) + sum_b BN_b(DW_{k_b, r_b}(x))`` where ``DW_{k,r}`` is a depthwise
    k x k conv at dilation r, "same" padding, no bias. :meth:`reparameterize` folds every BN into its
    conv, turns each dilated kernel into the equivalent undilated one (zeros between taps), pads it to
    K x K and sums everything into one depthwise K x K conv with bias; in eval mode both forms compute
    the same function. Submodule names match the official ``DilatedReparamBlock`` (``lk_origin``,
    ``origin_bn``, ``dil_conv_k{k}_{r}``, ``dil_bn_k{k}_{r}``), so its state dicts load.

    The convs run on channels_last input (converted in ``forward``): torch's NCHW depthwise kernel is
    far slower for large kernels on CPU. The output is channels_last in memory, NCHW in shape.

    Args:
        channels: C, input and output channels (depthwise).
        kernel_size: K, the large kernel size, odd, >= 5.
        deploy: build the inference form (one conv with bias) directly, e.g. to load fused weights.
        branches: (kernel size, dilation) of each parallel branch; defaults to
            :func:`default_branches` ``(K)``. Each equivalent size r(k-1)+1 must be odd and <= K.

    Shapes:
        input (N, C, H, W) -> output (N, C, H, W), any dtype the convs accept.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        deploy: bool = False,
        branches: Sequence[tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        branches = tuple(branches) if branches is not None else default_branches(kernel_size)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        for k, r in branches:
            size = r * (k - 1) + 1
            if size % 2 == 0 or size > kernel_size:
                raise ValueError(
                    f"branch k={k}, r={r} has equivalent size {size}: must be odd and <= {kernel_size}"
                )
        if len(set(branches)) != len(branches):
            raise ValueError(f"branches must be distinct, got {branches}")
        self.channels = channels
        self.kernel_size = kernel_size
        self.branches = branches
        self.lk_origin = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=deploy
        )
        if not deploy:
            self.origin_bn = nn.BatchNorm2d(channels)
            for k, r in branches:
                conv = nn.Conv2d(
                    channels,
                    channels,
                    k,
                    padding=r * (k - 1) // 2,
                    dilation=r,
                    groups=channels,
                    bias=False,
                )
                self.add_module(f"dil_conv_k{k}_{r}", conv)
                self.add_module(f"dil_bn_k{k}_{r}", nn.BatchNorm2d(channels))

    @property
    def is_reparameterized(self) -> bool:
        """True once the block holds a single conv (after :meth:`reparameterize` or ``deploy``)."""
        return not hasattr(self, "origin_bn")

    def _branch_modules(self) -> list[tuple[int, nn.Conv2d, nn.BatchNorm2d]]:
        return [
            (r, getattr(self, f"dil_conv_k{k}_{r}"), getattr(self, f"dil_bn_k{k}_{r}"))
            for k, r in self.branches
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        if self.is_reparameterized:
            return self.lk_origin(x)
        out = self.origin_bn(self.lk_origin(x))
        for _, conv, bn in self._branch_modules():
            out = out + bn(conv(x))
        return out

    @torch.no_grad()
    def reparameterize(self) -> None:
        """Fuse all branches and BNs into one K x K depthwise conv with bias, in place.

        Uses the BN running statistics, so the fused block equals the original in eval mode. Calling
        it again does nothing.
        """
        if self.is_reparameterized:
            return
        weight, bias = _fold_bn(self.lk_origin, self.origin_bn)
        for r, conv, bn in self._branch_modules():
            w, b = _fold_bn(conv, bn)
            w = _dilate_kernel(w, r)
            pad = (self.kernel_size - w.shape[-1]) // 2
            weight = weight + F.pad(w, [pad] * 4)
            bias = bias + b
        fused = skip_init(
            nn.Conv2d,
            self.channels,
            self.channels,
            self.kernel_size,
            padding=self.kernel_size // 2,
            groups=self.channels,
            bias=True,
            device=weight.device,
            dtype=weight.dtype,
        )
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
        self.lk_origin = fused
        del self.origin_bn
        for k, r in self.branches:
            delattr(self, f"dil_conv_k{k}_{r}")
            delattr(self, f"dil_bn_k{k}_{r}")

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, kernel_size={self.kernel_size}, branches={self.branches}, "
            f"reparameterized={self.is_reparameterized}"
        )


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Put ``model`` in eval mode and call ``reparameterize()`` on every submodule that has one.

    Duck-typed like timm's ``utils/model.py::reparameterize_model``: any module with a
    ``reparameterize`` method is converted, the root included, parents before children. Works in
    place; deep-copy first to keep the training form.

    Args:
        model: any module.

    Returns:
        The same ``model``, in eval mode.
    """
    model.eval()

    def visit(module: nn.Module) -> None:
        method = getattr(module, "reparameterize", None)
        if callable(method):
            method()
        for child in list(module.children()):
            visit(child)

    visit(model)
    logger.debug("re-parameterized %s", type(model).__name__)
    return model


def assert_reparam_equivalent(module: nn.Module, x: torch.Tensor, atol: float = 1e-5) -> float:
    """Assert that the re-parameterized form of ``module`` computes the same output in eval mode.

    Deep-copies ``module``, re-parameterizes the copy with :func:`reparameterize_model` and compares
    both in eval mode on ``x`` (``module`` is restored to its previous training flag afterwards).

    Args:
        module: the training-form module (left unchanged).
        x: an input batch for it.
        atol: the largest max-abs difference accepted.

    Returns:
        The max abs difference of the two outputs.

    Raises:
        AssertionError: if the difference exceeds ``atol``.
    """
    was_training = module.training
    fused = reparameterize_model(copy.deepcopy(module))
    module.eval()
    try:
        with torch.no_grad():
            diff = float((module(x) - fused(x)).abs().max())
    finally:
        module.train(was_training)
    assert diff <= atol, f"re-parameterized output differs by {diff:.3g} > atol={atol:g}"
    return diff
