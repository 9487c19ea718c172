"""Dilated Reparam Block: the fused single conv equals the multi-branch training form in eval mode."""

from __future__ import annotations

import copy

import pytest
import torch
from convsuite_dev.testing import check_layer
from torch import nn

from convsuite.core_ops.layers.reparam import (
    DilatedReparamConv2d,
    assert_reparam_equivalent,
    default_branches,
    reparameterize_model,
)


def _make_nontrivial(model: nn.Module, channels: int, seed: int = 0) -> nn.Module:
    """Random BN affine parameters, then training-mode forwards so the running stats move."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=generator) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=generator))
        model.train()
        for _ in range(4):
            model(3 * torch.randn(4, channels, 20, 24, generator=generator) + 1)
    # The statistics really moved away from the initial (0, 1).
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(bn.running_mean.abs().max() > 1e-3 for bn in bns)
    assert all((bn.running_var - 1).abs().max() > 1e-2 for bn in bns)
    return model


@pytest.mark.parametrize("kernel_size", [13, 17, 31])
@pytest.mark.parametrize("size", [(23, 37), (40, 19)])
def test_fused_block_equals_training_form(kernel_size, size):
    torch.manual_seed(kernel_size)
    block = _make_nontrivial(DilatedReparamConv2d(6, kernel_size), 6, seed=kernel_size)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        scale = float(block.eval()(x).abs().max())
    assert scale > 0.1  # a non-degenerate output, so atol=1e-5 is a real bound
    diff = assert_reparam_equivalent(block, x, atol=1e-5)
    assert diff <= 1e-5
    # The helper left the block in its training form.
    assert not block.is_reparameterized


def test_reparameterize_model_walks_a_nested_model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 1),
        DilatedReparamConv2d(8, 13),
        nn.GELU(),
        nn.Sequential(DilatedReparamConv2d(8, 17), nn.BatchNorm2d(8)),
    )
    model = _make_nontrivial(model, 3)
    x = torch.randn(2, 3, 30, 21)
    reference = copy.deepcopy(model).eval()
    out = reparameterize_model(model)
    assert out is model and not model.training
    blocks = [m for m in model.modules() if isinstance(m, DilatedReparamConv2d)]
    assert len(blocks) == 2 and all(b.is_reparameterized for b in blocks)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=0, atol=1e-5)
    assert assert_reparam_equivalent(reference, x) <= 1e-5


@pytest.mark.parametrize("kernel_size", [13, 31])
def test_fused_block_holds_one_conv_and_loads_into_deploy_form(kernel_size):
    torch.manual_seed(0)
    block = _make_nontrivial(DilatedReparamConv2d(5, kernel_size), 5)
    x = torch.randn(1, 5, 33, 34)
    block.reparameterize()
    block.reparameterize()  # idempotent
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in block.modules())
    (conv,) = convs
    assert conv.kernel_size == (kernel_size, kernel_size) and conv.groups == 5
    assert conv.bias is not None and conv.dilation == (1, 1)
    assert set(block.state_dict()) == {"lk_origin.weight", "lk_origin.bias"}

    deployed = DilatedReparamConv2d(5, kernel_size, deploy=True)
    assert deployed.is_reparameterized
    deployed.load_state_dict(block.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), block(x), rtol=0, atol=0)


def test_every_dilated_branch_contributes():
    torch.manual_seed(0)
    block = _make_nontrivial(DilatedReparamConv2d(4, 17), 4).eval()
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        full = block(x)
        for k, r in block.branches:
            pruned = copy.deepcopy(block)
            getattr(pruned, f"dil_conv_k{k}_{r}").weight.zero_()
            getattr(pruned, f"dil_bn_k{k}_{r}").bias.zero_()
            change = (pruned(x) - full).abs().max()
            assert change > 1e-2 * full.abs().max(), f"branch k={k} r={r} has no effect"
        # The fused kernel is not just the folded large kernel: the branches live on in it.
        pruned = copy.deepcopy(block)
        for k, r in block.branches:
            getattr(pruned, f"dil_conv_k{k}_{r}").weight.zero_()
            getattr(pruned, f"dil_bn_k{k}_{r}").bias.zero_()
        fused, fused_pruned = reparameterize_model(block), reparameterize_model(pruned)
        assert not torch.allclose(fused.lk_origin.weight, fused_pruned.lk_origin.weight)


@pytest.mark.parametrize("reparameterized", [False, True])
def test_battery(reparameterized):
    def make() -> nn.Module:
        block = DilatedReparamConv2d(3, 13)
        return reparameterize_model(block) if reparameterized else block

    check_layer(make, (2, 3, 14, 17), gradcheck_shape=(1, 3, 7, 9))


def test_branch_table():
    # The official table (AILab-CVC/UniRepLKNet, DilatedReparamBlock) and our extension above 17.
    assert default_branches(17) == ((5, 1), (9, 2), (3, 4), (3, 5), (3, 7))
    assert default_branches(13) == ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5))
    for kernel_size in range(5, 64, 2):
        branches = default_branches(kernel_size)
        sizes = [r * (k - 1) + 1 for k, r in branches]
        assert len(set(branches)) == len(branches)
        assert all(s % 2 == 1 and s <= kernel_size for s in sizes)
        if kernel_size > 17:  # the extension reaches further as K grows
            assert max(sizes) > kernel_size // 2
    for bad in (3, 4, 16):
        with pytest.raises(ValueError):
            default_branches(bad)
    with pytest.raises(ValueError):
        DilatedReparamConv2d(4, 9, branches=[(5, 3)])  # equivalent size 13 > 9


def test_equivalence_helper_can_fail_and_restores_mode():
    class Broken(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(2, 2, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

        @torch.no_grad()
        def reparameterize(self) -> None:
            self.conv.weight.mul_(1.01)

    broken = Broken().train()
    with pytest.raises(AssertionError):
        assert_reparam_equivalent(broken, torch.randn(1, 2, 8, 8))
    assert broken.training
