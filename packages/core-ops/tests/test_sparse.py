"""Sparse convolution against dense torch convolution (values and gradients) and against spconv."""

from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from convsuite_dev.testing import assert_learns
from torch import nn

import convsuite.core_ops.layers.sparse.rulebook as rulebook_module
from convsuite.core_ops.layers import (
    SparseBatchNorm,
    SparseConv2d,
    SparseConv3d,
    SparseGlobalPool,
    SparseMaxPool2d,
    SparseMaxPool3d,
    SparseReLU,
    SparseTensor,
    SubmanifoldConv2d,
    SubmanifoldConv3d,
    downsample_rulebook,
    sparse_conv,
    sparse_conv_reference,
    sparse_max_pool_reference,
    submanifold_conv,
    submanifold_rulebook,
    weight_from_spconv,
    weight_to_spconv,
    weight_to_torch,
)

with warnings.catch_warnings():  # spconv's build helpers use a deprecated locale call
    warnings.simplefilter("ignore", DeprecationWarning)
    import spconv.pytorch as spconv


@pytest.fixture(autouse=True)
def one_thread():
    """These inputs are tiny: a thread pool only adds synchronisation (seconds per test on a
    machine shared with another job)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(params=["index_add", "csr"])
def summation(request, monkeypatch) -> str:
    """Run a test with both ways of summing pair products (small inputs use index_add_)."""
    if request.param == "csr":
        monkeypatch.setattr(rulebook_module, "CSR_MIN_PAIRS", 0)
    return request.param


def _random_sites(
    shape: tuple[int, ...], channels: int = 3, density: float = 0.3, batch: int = 2, seed: int = 0
) -> SparseTensor:
    """Float64 sites with clusters and isolated points, features away from zero."""
    g = torch.Generator().manual_seed(seed)
    active = torch.rand(batch, 1, *shape, generator=g) < density
    values = torch.rand(batch, channels, *shape, generator=g, dtype=torch.float64) + 0.5
    return SparseTensor.from_dense(values * active)


def _grads(fn, *tensors: torch.Tensor, grad_out: torch.Tensor) -> list[torch.Tensor]:
    leaves = [t.detach().clone().requires_grad_() for t in tensors]
    fn(*leaves).backward(grad_out)
    return [leaf.grad for leaf in leaves]


@pytest.mark.parametrize("kernel", [1, 3, 5, (3, 5)])
def test_submanifold_conv2d_matches_dense_conv2d(kernel, summation: str) -> None:
    torch.manual_seed(0)
    x = _random_sites((9, 11))
    layer = SubmanifoldConv2d(3, 4, kernel).double()
    k = layer.kernel_size
    y = layer(x)
    assert torch.equal(y.coords, x.coords) and y.spatial_shape == x.spatial_shape
    reference = sparse_conv_reference(x, layer.weight, layer.bias, k)
    torch.testing.assert_close(y.feats, reference.feats, rtol=1e-12, atol=1e-12)

    def ours(f, w, b):
        return submanifold_conv(x.replace_feats(f), w, b, k).feats

    def dense(f, w, b):
        return sparse_conv_reference(x.replace_feats(f), w, b, k).feats

    grad_out = torch.randn_like(y.feats)
    args = (x.feats, layer.weight, layer.bias)
    for got, want in zip(
        _grads(ours, *args, grad_out=grad_out), _grads(dense, *args, grad_out=grad_out), strict=True
    ):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_submanifold_conv3d_matches_dense_conv3d(summation: str) -> None:
    torch.manual_seed(0)
    x = _random_sites((5, 6, 7), channels=2)
    layer = SubmanifoldConv3d(2, 3).double()
    reference = sparse_conv_reference(x, layer.weight, layer.bias, 3)
    torch.testing.assert_close(layer(x).feats, reference.feats, rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(reference.feats)
    args = (x.feats, layer.weight, layer.bias)
    ours = _grads(
        lambda f, w, b: submanifold_conv(x.replace_feats(f), w, b, 3).feats,
        *args,
        grad_out=grad_out,
    )
    dense = _grads(
        lambda f, w, b: sparse_conv_reference(x.replace_feats(f), w, b, 3).feats,
        *args,
        grad_out=grad_out,
    )
    for got, want in zip(ours, dense, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 1), (2, 3), ((2, 3), (2, 1))])
def test_strided_sparse_conv_matches_dense_strided_conv(kernel, stride, summation: str) -> None:
    torch.manual_seed(0)
    x = _random_sites((9, 11))
    layer = SparseConv2d(3, 4, kernel, stride).double()
    y = layer(x)
    reference = sparse_conv_reference(x, layer.weight, layer.bias, kernel, stride, False)
    assert torch.equal(y.coords, reference.coords)
    assert y.spatial_shape == reference.spatial_shape
    torch.testing.assert_close(y.feats, reference.feats, rtol=1e-12, atol=1e-12)
    if kernel == stride:  # the distinct coords // 2, less the partial windows at the far edge
        cells = torch.cat([x.coords[:, :1], x.coords[:, 1:] // 2], 1).unique(dim=0)
        inside = (cells[:, 1:] < torch.tensor(y.spatial_shape)).all(1)
        assert torch.equal(y.coords, cells[inside])

    grad_out = torch.randn_like(y.feats)
    args = (x.feats, layer.weight, layer.bias)
    ours = _grads(
        lambda f, w, b: sparse_conv(x.replace_feats(f), w, b, kernel, stride).feats,
        *args,
        grad_out=grad_out,
    )
    dense = _grads(
        lambda f, w, b: (
            sparse_conv_reference(x.replace_feats(f), w, b, kernel, stride, False).feats
        ),
        *args,
        grad_out=grad_out,
    )
    for got, want in zip(ours, dense, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_strided_sparse_conv3d_matches_dense_conv3d() -> None:
    x = _random_sites((6, 5, 7), channels=2)
    layer = SparseConv3d(2, 3).double()
    y = layer(x)
    reference = sparse_conv_reference(x, layer.weight, layer.bias, 2, 2, False)
    assert torch.equal(y.coords, reference.coords) and y.spatial_shape == (3, 2, 3)
    torch.testing.assert_close(y.feats, reference.feats, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2)])
def test_max_pool_is_dense_max_pool_over_active_sites(kernel, stride) -> None:
    x = _random_sites((9, 11))
    x = x.replace_feats(x.feats - 1.0)  # negative values: an inactive site must not count as 0
    pooled = SparseMaxPool2d(kernel, stride)(x)
    reference = sparse_max_pool_reference(x, kernel, stride)
    assert torch.equal(pooled.coords, reference.coords)
    torch.testing.assert_close(pooled.feats, reference.feats, rtol=0, atol=0)
    # It reuses the strided convolution's output sites (and their rulebook cache).
    assert SparseConv2d(3, 1, kernel, stride).double()(x)._cache is pooled._cache

    x3 = _random_sites((4, 6, 5))
    pooled3 = SparseMaxPool3d()(x3)
    torch.testing.assert_close(pooled3.feats, sparse_max_pool_reference(x3, 2, 2).feats)

    feats = x.feats.detach().requires_grad_()
    SparseMaxPool2d(kernel, stride)(x.replace_feats(feats)).feats.sum().backward()
    # Each output channel's gradient goes to one maximal site.
    assert feats.grad.sum() == pooled.feats.numel()


def test_global_pool_per_batch_item() -> None:
    x = _random_sites((6, 7), batch=3)
    batch = x.coords[:, 0]
    avg, top = SparseGlobalPool("avg")(x), SparseGlobalPool("max")(x)
    assert avg.shape == top.shape == (3, 3)
    for b in range(3):
        rows = x.feats[batch == b]
        torch.testing.assert_close(avg[b], rows.mean(0))
        torch.testing.assert_close(top[b], rows.max(0).values)
    feats = x.feats.detach().requires_grad_()
    SparseGlobalPool("avg")(x.replace_feats(feats)).sum().backward()
    counts = torch.bincount(batch).double()
    torch.testing.assert_close(feats.grad[:, 0], 1.0 / counts[batch])
    with pytest.raises(ValueError, match="mode"):
        SparseGlobalPool("sum")


def test_dense_round_trip_and_active_rule() -> None:
    dense = torch.zeros(2, 3, 5, 4, dtype=torch.float64)
    dense[0, 1, 2, 3] = 2.0  # one channel nonzero is enough to be active
    dense[1, :, 0, 0] = torch.tensor([1.0, -1.0, 0.5])
    x = SparseTensor.from_dense(dense)
    assert x.coords.tolist() == [[0, 2, 3], [1, 0, 0]]
    assert x.coords.dtype == torch.int64 and x.coords.is_contiguous()
    assert x.feats.shape == (2, 3) and x.spatial_shape == (5, 4) and x.batch_size == 2
    assert torch.equal(x.to_dense(), dense)
    volume = _random_sites((3, 4, 5))
    assert torch.equal(SparseTensor.from_dense(volume.to_dense()).coords, volume.coords)
    assert torch.equal(SparseTensor.from_dense(volume.to_dense()).to_dense(), volume.to_dense())


def test_empty_batch_item_and_no_cross_talk_between_items(summation: str) -> None:
    """Item 1 has no sites; items 0 and 2 share xy positions but must not see each other."""
    coords = torch.tensor([[0, 1, 1], [0, 1, 2], [0, 2, 2], [2, 1, 1], [2, 1, 2], [2, 3, 3]])
    feats = torch.rand(6, 2, dtype=torch.float64) + 0.5
    x = SparseTensor(coords, feats, (4, 4), batch_size=3)
    assert x.to_dense()[1].abs().sum() == 0
    layer = SubmanifoldConv2d(2, 3).double()
    reference = sparse_conv_reference(x, layer.weight, layer.bias, 3)
    torch.testing.assert_close(layer(x).feats, reference.feats)
    down = SparseConv2d(2, 3).double()
    y = down(x)
    reference = sparse_conv_reference(x, down.weight, down.bias, 2, 2, False)
    assert torch.equal(y.coords, reference.coords) and (y.coords[:, 0] != 1).all()
    torch.testing.assert_close(y.feats, reference.feats)
    pooled = SparseGlobalPool("max")(layer(x))
    assert pooled.shape == (3, 3) and torch.equal(pooled[1], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(SparseGlobalPool()(x)[1], torch.zeros(2, dtype=torch.float64))

    nothing = SparseTensor(torch.zeros(0, 3, dtype=torch.int64), torch.zeros(0, 2), (4, 4), 2)
    assert SubmanifoldConv2d(2, 3)(nothing).feats.shape == (0, 3)
    assert SparseConv2d(2, 3)(nothing).feats.shape == (0, 3)
    assert SparseMaxPool2d()(nothing).feats.shape == (0, 2)
    assert SparseBatchNorm(2)(nothing).feats.shape == (0, 2)
    assert torch.equal(SparseGlobalPool()(nothing), torch.zeros(2, 2))
    assert nothing.to_dense().shape == (2, 2, 4, 4)


def test_bad_input_raises_clear_errors() -> None:
    feats = torch.zeros(2, 1)
    with pytest.raises(ValueError, match="int64"):
        SparseTensor(torch.tensor([[0, 1, 1], [0, 2, 2]], dtype=torch.int32), feats, (4, 4))
    with pytest.raises(ValueError, match="int64"):
        SparseTensor(torch.tensor([[0.0, 1, 1], [0, 2, 2]]), feats, (4, 4))
    with pytest.raises(ValueError, match=r"row 1 = \[0, 4, 2\] is outside"):
        SparseTensor(torch.tensor([[0, 1, 1], [0, 4, 2]]), feats, (4, 4))
    with pytest.raises(ValueError, match="outside"):
        SparseTensor(torch.tensor([[0, 1, 1], [0, 2, -1]]), feats, (4, 4))
    with pytest.raises(ValueError, match="outside"):
        SparseTensor(torch.tensor([[0, 1, 1], [2, 2, 2]]), feats, (4, 4), batch_size=2)
    with pytest.raises(ValueError, match=r"\(N, 1 \+ 2\)"):
        SparseTensor(torch.tensor([[0, 1], [0, 2]]), feats, (4, 4))
    with pytest.raises(ValueError, match="feats"):
        SparseTensor(torch.tensor([[0, 1, 1]]), feats, (4, 4))
    with pytest.raises(ValueError, match="floating"):
        SparseTensor(torch.tensor([[0, 1, 1]]), torch.zeros(1, 1, dtype=torch.int64), (4, 4))
    duplicated = SparseTensor(
        torch.tensor([[0, 2, 2], [0, 1, 1], [0, 2, 2]]), torch.zeros(3, 1), (4, 4)
    )
    with pytest.raises(ValueError, match="duplicate"):
        SubmanifoldConv2d(1, 1)(duplicated)
    with pytest.raises(ValueError, match="duplicate"):
        SparseMaxPool2d()(duplicated)
    with pytest.raises(ValueError, match="odd"):
        SubmanifoldConv2d(1, 1, 2)
    x = _random_sites((5, 5)).to(torch.float32)
    with pytest.raises(ValueError, match="expects 4 channels"):
        SubmanifoldConv2d(4, 1)(x)
    with pytest.raises(ValueError, match="3 spatial axes"):
        SubmanifoldConv3d(3, 1)(x)
    with pytest.raises(ValueError, match="weight must be"):
        submanifold_conv(x, torch.zeros(9, 2, 1), None, 3)
    with pytest.raises(ValueError, match="smaller than kernel"):
        SparseConv2d(3, 1, 7, 2)(x)


def test_rulebooks_are_built_once_per_resolution() -> None:
    x = _random_sites((12, 12)).to(torch.float32)
    net = nn.Sequential(
        SubmanifoldConv2d(3, 8),
        SparseBatchNorm(8),
        SparseReLU(),
        SubmanifoldConv2d(8, 8),
        SparseConv2d(8, 16),
        SubmanifoldConv2d(16, 16),
    )
    y = net[:4](x)
    assert y._cache is x._cache  # same sites, same cache
    assert submanifold_rulebook(y, (3, 3)) is submanifold_rulebook(x, (3, 3))
    assert len([key for key in x._cache if key[0] == "subm"]) == 1
    coarse = net(x)
    assert coarse._cache is downsample_rulebook(y, (2, 2), (2, 2))[0]._cache
    assert SparseMaxPool2d()(y)._cache is coarse._cache  # same coarse sites, shared cache
    assert ("subm", (3, 3)) in coarse._cache


def test_input_order_is_kept(summation: str) -> None:
    x = _random_sites((7, 8))
    order = torch.randperm(x.coords.shape[0], generator=torch.Generator().manual_seed(3))
    shuffled = SparseTensor(x.coords[order], x.feats[order], x.spatial_shape, x.batch_size)
    layer = SubmanifoldConv2d(3, 2).double()
    torch.testing.assert_close(layer(shuffled).feats, layer(x).feats[order])
    feats = shuffled.feats.detach().requires_grad_()
    layer(shuffled.replace_feats(feats)).feats.square().sum().backward()
    reference = x.feats.detach().requires_grad_()
    layer(x.replace_feats(reference)).feats.square().sum().backward()
    torch.testing.assert_close(feats.grad, reference.grad[order])


@pytest.mark.parametrize(
    "make",
    [
        lambda: SubmanifoldConv2d(3, 2),
        lambda: SubmanifoldConv2d(3, 2, bias=False),
        lambda: SparseConv2d(3, 2, 3, 2),
        lambda: SparseConv2d(3, 2, bias=False),
    ],
)
def test_module_battery(make, summation: str) -> None:
    """State-dict round trip, .to(float64) moves every tensor, float64 gradcheck."""
    torch.manual_seed(0)
    layer = make()
    x32 = _random_sites((6, 7), batch=1).to(torch.float32)
    y = layer(x32).feats
    torch.manual_seed(1)
    fresh = make()
    fresh.load_state_dict(layer.state_dict())
    torch.testing.assert_close(fresh(x32).feats, y)
    moved = copy.deepcopy(layer).double()
    assert all(p.dtype == torch.float64 for p in moved.parameters())
    assert "kernel_size" in repr(moved)
    x = _random_sites((5, 6), batch=1)
    inputs = (x.feats, *moved.parameters())
    inputs = tuple(t.detach().clone().requires_grad_() for t in inputs)
    assert torch.autograd.gradcheck(lambda *a: _functional(moved, x, *a), inputs, fast_mode=True)


def _functional(layer, x: SparseTensor, feats, weight, bias=None):
    if isinstance(layer, SubmanifoldConv2d):
        return submanifold_conv(x.replace_feats(feats), weight, bias, layer.kernel_size).feats
    return sparse_conv(x.replace_feats(feats), weight, bias, layer.kernel_size, layer.stride).feats


def test_batch_norm_uses_active_sites_only_and_relu() -> None:
    x = _random_sites((6, 6)).to(torch.float32)
    norm = SparseBatchNorm(3)
    y = norm(x)
    torch.testing.assert_close(y.feats.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(norm.norm.running_mean, 0.1 * x.feats.mean(0))
    norm.eval()
    reference = F.batch_norm(
        x.feats, norm.norm.running_mean, norm.norm.running_var, norm.norm.weight, norm.norm.bias
    )
    torch.testing.assert_close(norm(x).feats, reference)
    shifted = x.replace_feats(x.feats - 1.0)
    assert torch.equal(SparseReLU()(shifted).feats, torch.relu(shifted.feats))
    assert SparseReLU()(shifted)._cache is x._cache
    assert torch.equal(x.replace_feats(torch.tanh(x.feats)).feats, torch.tanh(x.feats))


def test_network_learns() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(
        SubmanifoldConv2d(3, 8),
        SparseBatchNorm(8),
        SparseReLU(),
        SparseMaxPool2d(),
        SubmanifoldConv2d(8, 8),
        SparseConv2d(8, 4),
        SparseGlobalPool("avg"),
    )
    x = _random_sites((12, 12), batch=4).to(torch.float32)
    assert_learns(net, [(x, torch.randn(4, 4))], F.mse_loss, epochs=12, lr=0.05)


def test_weight_layouts() -> None:
    weight = torch.randn(15, 2, 4)
    spconv_weight = weight_to_spconv(weight, (3, 5))
    assert spconv_weight.shape == (4, 3, 5, 2)
    assert torch.equal(weight_from_spconv(spconv_weight), weight)
    dense = weight_to_torch(weight, (3, 5))
    assert dense.shape == (4, 2, 3, 5)
    assert torch.equal(dense[1, 0, 2, 4], weight[2 * 5 + 4, 0, 1])


@pytest.mark.parametrize("kernel", [3, 5])
def test_submanifold_forward_matches_spconv(kernel: int) -> None:
    """spconv 2.x CPU (forward only: its CPU backward calls torch.cuda) within 1e-5."""
    torch.manual_seed(0)
    x = _random_sites((20, 24), channels=4, density=0.2).to(torch.float32)
    ours = SubmanifoldConv2d(4, 8, kernel)
    theirs = spconv.SubMConv2d(4, 8, kernel, bias=True)
    with torch.no_grad():
        theirs.weight.copy_(weight_to_spconv(ours.weight, ours.kernel_size))
        theirs.bias.copy_(ours.bias)
    out = theirs(spconv.SparseConvTensor(x.feats, x.coords.int(), list(x.spatial_shape), 2))
    assert torch.equal(out.indices.long(), x.coords)
    torch.testing.assert_close(ours(x).feats, out.features, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(weight_from_spconv(theirs.weight), ours.weight)


def test_strided_and_3d_forward_match_spconv() -> None:
    torch.manual_seed(0)
    x = _random_sites((20, 24), channels=4, density=0.2).to(torch.float32)
    ours, theirs = SparseConv2d(4, 8), spconv.SparseConv2d(4, 8, 2, 2)
    with torch.no_grad():
        theirs.weight.copy_(weight_to_spconv(ours.weight, ours.kernel_size))
        theirs.bias.copy_(ours.bias)
    out = theirs(spconv.SparseConvTensor(x.feats, x.coords.int(), list(x.spatial_shape), 2))
    order = torch.argsort((out.indices[:, 0] * 10 + out.indices[:, 1]) * 12 + out.indices[:, 2])
    y = ours(x)
    assert torch.equal(out.indices[order].long(), y.coords)
    torch.testing.assert_close(y.feats, out.features[order], rtol=1e-5, atol=1e-5)

    v = _random_sites((6, 7, 8), channels=2, density=0.2).to(torch.float32)
    ours3, theirs3 = SubmanifoldConv3d(2, 4), spconv.SubMConv3d(2, 4, 3)
    with torch.no_grad():
        theirs3.weight.copy_(weight_to_spconv(ours3.weight, ours3.kernel_size))
        theirs3.bias.copy_(ours3.bias)
    out3 = theirs3(spconv.SparseConvTensor(v.feats, v.coords.int(), list(v.spatial_shape), 2))
    torch.testing.assert_close(ours3(v).feats, out3.features, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,shape", [(16, (70, 90)), (4, (24, 20)), (3, (10, 11))])
def test_window_stem_one_channel_matches_dense_strided_conv(stride, shape) -> None:
    """kernel == stride with one input channel (a wafer-map stem): the embedding-bag path, on
    shuffled sites, partial windows at the far edge, power-of-two and other strides."""
    x = _random_sites(shape, channels=1, density=0.05, seed=4)
    order = torch.randperm(x.coords.shape[0], generator=torch.Generator().manual_seed(5))
    x = SparseTensor(x.coords[order], x.feats[order], x.spatial_shape, x.batch_size)
    torch.manual_seed(0)
    layer = SparseConv2d(1, 5, stride, stride).double()
    y = layer(x)
    reference = sparse_conv_reference(x, layer.weight, layer.bias, stride, stride, False)
    assert torch.equal(y.coords, reference.coords) and y.spatial_shape == reference.spatial_shape
    torch.testing.assert_close(y.feats, reference.feats, rtol=1e-12, atol=1e-12)
    grad_out = torch.randn_like(y.feats)
    args = (x.feats, layer.weight, layer.bias)
    ours = _grads(
        lambda f, w, b: sparse_conv(x.replace_feats(f), w, b, stride, stride).feats,
        *args,
        grad_out=grad_out,
    )
    dense = _grads(
        lambda f, w, b: (
            sparse_conv_reference(x.replace_feats(f), w, b, stride, stride, False).feats
        ),
        *args,
        grad_out=grad_out,
    )
    for got, want in zip(ours, dense, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    # The same output sites (and shared cache) as a max pool with that window.
    assert SparseMaxPool2d(stride, stride)(x)._cache is y._cache


def test_window_paths_refuse_duplicate_sites() -> None:
    duplicated = SparseTensor(
        torch.tensor([[0, 2, 2], [0, 1, 1], [0, 2, 2]]), torch.zeros(3, 2), (4, 4)
    )
    with pytest.raises(ValueError, match="duplicate"):
        SparseConv2d(1, 3)(duplicated.replace_feats(torch.zeros(3, 1)))
    with pytest.raises(ValueError, match="duplicate"):
        SparseConv2d(2, 3)(duplicated)


@pytest.mark.parametrize(
    ("shape", "kernel"),
    [
        ((40, 50), (3, 3)),
        ((40, 50), (5, 3)),
        ((12, 10, 9), (3, 3, 3)),
        ((300,), (5,)),
        ((30, 30), (1, 3)),
    ],
)
def test_compiled_rulebook_equals_the_tensor_path_pair_for_pair(summation, shape, kernel) -> None:
    """Sites in raster order take the compiled pass; it must give the tensor path's rulebook
    (same taps, bounds, pairs and CSR index: so the same sums, bit for bit)."""
    x = _random_sites(shape, channels=1)
    compiled = submanifold_rulebook(x, kernel)
    radius = tuple(k // 2 for k in kernel)
    keys, order = rulebook_module._sorted_keys(x, radius)
    assert order is None  # raster order: the compiled pass was taken
    extents = [s + 2 * r for s, r in zip(x.spatial_shape, radius, strict=True)]
    strides = rulebook_module._row_major_strides(extents)
    table, found, taps, centre = rulebook_module._neighbour_candidates(keys, kernel, strides)
    n = keys.numel() - 2
    reference = rulebook_module._pairs(table, found, n, taps, centre, False, -1)
    assert compiled.num_pairs > 0
    assert (compiled.taps, compiled.bounds, compiled.centre) == (
        reference.taps,
        reference.bounds,
        reference.centre,
    )
    assert torch.equal(compiled.inputs, reference.inputs)
    assert torch.equal(compiled.outputs, reference.outputs)
    if summation == "csr":
        for mine, theirs in zip(compiled.to_outputs, reference.to_outputs, strict=True):
            assert torch.equal(mine, theirs)
    else:
        assert compiled.to_outputs is None and reference.to_outputs is None


@pytest.mark.parametrize(
    ("shape", "stride"),
    [
        ((41, 50), (2, 3)),
        ((40, 48), (2, 2)),
        ((12, 10, 9), (2, 2, 2)),
        ((301,), (4,)),
        ((30, 31), (1, 3)),
    ],
)
def test_compiled_window_map_and_rulebook_equal_the_tensor_path(monkeypatch, shape, stride) -> None:
    """Raster-ordered sites take the compiled window pass and counting sorts; the map (output
    sites, rows, taps, dropped edge sites) and the rulebook's pair orders must be the tensor
    path's, element for element."""
    x = _random_sites(shape, channels=1)
    compiled = rulebook_module.window_map(x, stride)
    assert x._cache[("unique",)] is True  # raster order: the compiled pass was taken
    check = rulebook_module._unique_sites_in_raster_order
    monkeypatch.setattr(
        rulebook_module, "_unique_sites_in_raster_order", lambda y: check(y) and False
    )
    reference = rulebook_module.window_map(_random_sites(shape, channels=1), stride)
    assert torch.equal(compiled.out.coords, reference.out.coords)
    assert torch.equal(compiled.out_rows, reference.out_rows)
    assert torch.equal(compiled.taps, reference.taps)
    assert (compiled.sources is None) == (reference.sources is None)
    if compiled.sources is not None:
        assert torch.equal(compiled.sources, reference.sources)
    monkeypatch.setattr(rulebook_module, "CSR_MIN_PAIRS", 0)
    volume, m = math.prod(stride), compiled.out.coords.shape[0]
    rulebook = rulebook_module._window_rulebook(compiled, x.coords.shape[0], volume)
    order = torch.argsort(compiled.taps * m + compiled.out_rows)
    outputs, taps = compiled.out_rows[order], compiled.taps[order]
    inputs = order if compiled.sources is None else compiled.sources[order]
    assert torch.equal(rulebook.inputs, inputs) and torch.equal(rulebook.outputs, outputs)
    assert torch.equal(rulebook.to_outputs[1], torch.argsort(outputs * volume + taps))


def test_importing_the_layers_does_not_import_numba() -> None:
    """numba (the compiled rulebook passes, the depthwise kernels) is imported on first use."""
    import subprocess
    import sys

    code = "import sys, convsuite.core_ops.layers.sparse; sys.exit('numba' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_row_ops_equal_index_select_and_index_add(monkeypatch, dtype) -> None:
    """Below CSR_MIN_PAIRS pairs are gathered and summed by serial compiled loops; forward and
    gradients must equal the ``index_select`` / ``index_add_`` path's exactly (same summation
    order), for a submanifold, a strided and a kernel == stride layer."""
    x = _random_sites((13, 17), channels=4)
    x = x.replace_feats(x.feats.to(dtype))
    torch.manual_seed(0)
    layers = [
        SubmanifoldConv2d(4, 5).to(dtype),
        SparseConv2d(4, 5, 3, 2).to(dtype),
        SparseConv2d(4, 5, 2, 2).to(dtype),
    ]
    for layer in layers:
        results = []
        for compiled in (True, False):
            monkeypatch.setattr(rulebook_module, "COMPILED_ROW_OPS", compiled)
            feats = x.feats.detach().clone().requires_grad_()
            layer.zero_grad(set_to_none=True)
            y = layer(SparseTensor(x.coords, feats, x.spatial_shape, x.batch_size))
            assert 0 < submanifold_rulebook(x, (3, 3)).num_pairs < rulebook_module.CSR_MIN_PAIRS
            y.feats.backward(torch.linspace(-1, 1, y.feats.numel(), dtype=dtype).view_as(y.feats))
            results.append((y.feats, feats.grad, layer.weight.grad, layer.bias.grad))
        for mine, theirs in zip(*results, strict=True):
            assert torch.equal(mine, theirs)


def test_strided_conv_with_one_output_site_leaves_the_bias_alone() -> None:
    """With no centre tap the output starts as the bias, and pair products are added in place:
    one output row must not alias the bias parameter."""
    coords = torch.tensor([[0, 0, 0], [0, 1, 1], [0, 2, 0]])
    x = SparseTensor(coords, torch.ones(3, 2), (3, 3), 1)
    layer = SparseConv2d(2, 4, 3, 3)
    bias = layer.bias.detach().clone()
    with torch.no_grad():
        y = layer(x)
    assert y.feats.shape == (1, 4)
    assert torch.equal(layer.bias.detach(), bias)
    reference = sparse_conv_reference(x, layer.weight, layer.bias, 3, 3, submanifold=False)
    torch.testing.assert_close(y.feats, reference.feats)


@pytest.mark.parametrize("shuffle", [False, True])
def test_compiled_keys_equal_the_tensor_path(monkeypatch, shuffle) -> None:
    """Site keys and the raster-order check from the compiled pass equal the torch ops' (sorted
    inputs); unsorted inputs fall back to the tensor path's sort; duplicates still raise."""
    x = _random_sites((13, 17), channels=1)
    if shuffle:
        x = SparseTensor(x.coords.flip(0), x.feats.flip(0), x.spatial_shape, x.batch_size)
    results = []
    for compiled in (True, False):
        monkeypatch.setattr(rulebook_module, "COMPILED_ROW_OPS", compiled)
        y = SparseTensor(x.coords, x.feats, x.spatial_shape, x.batch_size)
        keys, order = rulebook_module._sorted_keys(y, (1, 2))
        results.append((keys, order, rulebook_module._unique_sites_in_raster_order(y)))
    (keys, order, raster), (keys_ref, order_ref, raster_ref) = results
    assert torch.equal(keys, keys_ref) and raster == raster_ref == (not shuffle)
    assert (order is None) == (order_ref is None) == (not shuffle)
    if shuffle:
        assert torch.equal(order, order_ref)
    monkeypatch.setattr(rulebook_module, "COMPILED_ROW_OPS", True)
    twice = torch.cat([x.coords[:1], x.coords])
    dup = SparseTensor._trusted(twice, torch.ones(twice.shape[0], 1), x.spatial_shape, 2, {})
    with pytest.raises(ValueError, match="duplicate"):
        rulebook_module._sorted_keys(dup, (1, 1))
