"""InceptionDilatedBlock / DilatedBranch: shapes, receptive fields, parameter count, gradients."""

from __future__ import annotations

import pytest
import torch

from convsuite.core_ops.layers import DilatedBranch, InceptionDilatedBlock
from convsuite.core_ops.layers.asymmetric import IVDNET_BRANCHES


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.mark.parametrize("asymmetric", [True, False])
def test_block_keeps_size_and_sets_channels(asymmetric: bool) -> None:
    block = InceptionDilatedBlock(3, 8, asymmetric=asymmetric)
    out = block(torch.randn(2, 3, 17, 22))
    assert out.shape == (2, 8, 17, 22)
    assert (out >= 0).all()  # the last conv ends in BN + ReLU


@pytest.mark.parametrize(("kernel", "dilation"), IVDNET_BRANCHES)
@pytest.mark.parametrize("asymmetric", [True, False])
def test_branch_receptive_field(kernel: int, dilation: int, asymmetric: bool) -> None:
    """The response to an impulse reaches exactly d (k - 1) / 2 pixels in each direction."""
    torch.manual_seed(0)
    branch = DilatedBranch(1, kernel, dilation, asymmetric).eval().double()
    with torch.no_grad():
        for module in branch.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.abs_().add_(0.1)
                module.bias.fill_(-1e-3)
    x = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    x[0, 0, 20, 20] = 100.0
    reference = branch(torch.zeros_like(x))
    rows, cols = torch.nonzero((branch(x) - reference)[0, 0].abs() > 1e-9, as_tuple=True)
    reach = dilation * (kernel - 1) // 2
    assert (rows.min().item(), rows.max().item()) == (20 - reach, 20 + reach)
    assert (cols.min().item(), cols.max().item()) == (20 - reach, 20 + reach)


def _conv_bn(c_in: int, c_out: int, kh: int, kw: int) -> int:
    return c_in * c_out * kh * kw + c_out + 2 * c_out  # conv weight + bias, BN weight + bias


def test_parameter_count_matches_reference_formula() -> None:
    """Counted layer by layer as in IVD-Net's Conv_residual_conv_Inception_Dilation_asymmetric."""
    c_in, c = 12, 8
    expected = _conv_bn(c_in, c, 3, 3) + _conv_bn(5 * c, c, 1, 1) + _conv_bn(c, c, 3, 3)
    expected += sum(2 * _conv_bn(c, c, k, 1) for k, _ in IVDNET_BRANCHES)
    block = InceptionDilatedBlock(c_in, c, asymmetric=True)
    assert sum(p.numel() for p in block.parameters()) == expected
    square = InceptionDilatedBlock(c_in, c, asymmetric=False)
    expected_square = expected - sum(
        2 * _conv_bn(c, c, k, 1) - _conv_bn(c, c, k, k) for k, _ in IVDNET_BRANCHES
    )
    assert sum(p.numel() for p in square.parameters()) == expected_square


def test_gradcheck_and_noncontiguous() -> None:
    torch.manual_seed(0)
    block = InceptionDilatedBlock(2, 3, branches=((1, 1), (3, 2))).eval().double()
    x = torch.randn(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5)
    wide = torch.randn(1, 2, 6, 7, dtype=torch.float64).transpose(2, 3)
    assert torch.allclose(block(wide), block(wide.contiguous()))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="odd"):
        DilatedBranch(4, 2, 1, asymmetric=False)
    with pytest.raises(ValueError, match="at least one branch"):
        InceptionDilatedBlock(4, 4, branches=())
