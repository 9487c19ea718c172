"""Inference precision: float32, or bfloat16 matrix products through oneDNN where they pay.

Recent x86 CPUs (AVX512-BF16, AMX) multiply bfloat16 matrices several times faster than float32
(this project's CPU: about 2,100 vs 250 GFLOP/s for a 2048x2048 GEMM on 2 threads), but
``torch.autocast`` gains little there: it converts every input and weight on every call and runs
convolutions in torch's default NCHW layout, which oneDNN's bf16 kernels do not favour. This module
converts a model once instead:

- every *dense* convolution (``nn.Conv1d/2d/3d`` and subclasses that convolve through torch's
  ``_conv_forward``, such as the HEALPix-padded convolution; ``nn.ConvTranspose2d/3d``; at least :data:`MIN_GROUP_CHANNELS` input and output channels per group) and every
  ``nn.Linear`` keeps its weights in bfloat16, 2-D/3-D kernels in channels-last layout; its input is
  cast to bfloat16 (channels-last) on the way in and, outside a region (below), its output back to
  the input's dtype on the way out, so the model's interface stays float32;
- every pseudo-complex convolution (:class:`~convsuite.core_ops.layers.PseudoComplexConv2d`,
  which builds its block weight ``[[Wr, -Wi], [Wi, Wr]]`` in code, so is no ``nn.Conv2d``) with
  at least :data:`MIN_GROUP_CHANNELS` real channels per group on its input *or* output side
  caches that block weight once in bfloat16 channels-last and convolves bfloat16 inputs with it;
  its float32 parameters and state dict stay as they are (code that reads ``weight_real``, such
  as the audio package's per-frame program, sees float32), and float32 inputs take the float32
  path unchanged. Both sides count so that a pseudo-complex network's stem and head convert too:
  a float32 map concatenated with bf16 ones would promote them all back to float32;
- a batch norm that directly follows a plain convolution inside an ``nn.Sequential`` is folded
  into the convolution's weights (one pass over the activations fewer);
- activations stay bfloat16 from layer to layer inside a *region*: any module whose whole subtree
  is made of converted layers, plain float32 convs/linears (their input is cast back to float32),
  norms whose CPU kernels take bfloat16 with float32 statistics, and modules without float32
  weights of their own (activations, pools, containers, residual blocks, padding code). The
  outermost region casts its output back to the caller's dtype (torch's default layout); a
  module that uses float32 weights of its own in functional code (FFT, graph, sparse, DCLS
  layers, an einsum with a parameter) is never inside one, so it sees float32 inputs. A module
  without float32 weights whose forward needs float32 anyway (a parameter-free ``torch.fft``
  filter: bf16 has no CPU FFT) opts out with a true class or instance attribute
  ``_convsuite_keep_fp32`` (:data:`KEEP_FP32`) and then also sees float32 inputs. On this
  CPU the casts around each layer cost as much as the bf16 convolutions save, and the
  elementwise and padding work between convolutions moves half the bytes in bfloat16
  (``benchmarks/bench_precision.py``, 2 threads, idle: SkyReconNet 1.65x, EELS VAE 2.06x with
  regions; SkyReconNet on one thread, CPU time: 1.30x with casts around every layer, 1.79x with
  regions; see the core-ops README's table);
- depthwise and thin convolutions (memory-bound: no gain from bf16 units), FFT convolutions
  (:class:`~convsuite.core_ops.layers.FFTConv2d` and the dispatcher compute their transforms in
  float32 inside; bf16 has no CPU FFT), norms, graph and sparse layers keep float32 weights. A
  model whose thin layers are not memory-bound in its own measurement lowers the channel floor for
  itself with a class or instance attribute ``_convsuite_bf16_min_channels``
  (:data:`BF16_MIN_CHANNELS`, a positive int), read from the module and inherited by its
  submodules; the floor counts channels per group, so a floor of 1 converts depthwise
  convolutions too;
- every ``nn.ReLU`` becomes a :class:`BF16ReLU`, which on bfloat16 inputs zeroes the negative
  values through the bits' int16 view and is ``nn.ReLU`` on any other dtype (a (6, 4, 128, 128)
  channels-last map on one thread, median thread CPU time, load 2.8: 35 us against torch's ReLU
  84 us in bfloat16 and 114 us in float32, 2.4x and 3.3x).

Use, in a domain package::

    from convsuite.core_ops.precision import inference_mode, prepare_for_inference

    model = prepare_for_inference(model, precision)  # "fp32" or "bf16"; model.eval() included
    with inference_mode(precision):
        y = model(x)  # x and y float32 either way

and in its CLI the shared option ``convsuite.core_ops.cli.Precision`` (``--precision fp32|bf16``).

A model prepared for bf16 is for inference only: its state dict holds bfloat16 weights and no
folded batch norms; load a fresh model to train or to go back to float32. Code that reads a
converted layer's ``weight`` and calls a functional convolution itself (bypassing the layer's
forward) sees a bfloat16 weight.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import threading
from collections.abc import Iterator
from typing import Literal, get_args

import torch
from torch import Tensor, nn

from convsuite.core_ops.errors import InputError
from convsuite.core_ops.runtime import keep_freed_memory_on_first_use

__all__ = [
    "BF16_MIN_CHANNELS",
    "BF16ReLU",
    "KEEP_FP32",
    "MIN_GROUP_CHANNELS",
    "PRECISIONS",
    "PrecisionName",
    "bf16_layers",
    "check_precision",
    "fold_batch_norms",
    "inference_mode",
    "prepare_for_inference",
]

_LOG = logging.getLogger(__name__)

PrecisionName = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = get_args(PrecisionName)
# Convolutions with fewer channels per group than this stay float32: they are memory-bound, so
# bf16 units do not speed them up and the casts around them would cost more than they save.
MIN_GROUP_CHANNELS = 8

_DENSE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)
_MARK = "_convsuite_precision"

# A module (class or instance) with this attribute true is never inside a bf16 region: for modules
# without float32 weights whose forward still needs float32 inputs (``torch.fft`` has no bf16 CPU
# kernels, for instance).
KEEP_FP32 = "_convsuite_keep_fp32"

# A module (class or instance) with this integer attribute converts its dense layers from that many
# channels per group on (instead of :data:`MIN_GROUP_CHANNELS`); its submodules inherit the value
# unless they set their own.
BF16_MIN_CHANNELS = "_convsuite_bf16_min_channels"

# The int16 bit pattern of bfloat16 -inf: a bfloat16 value is negative (or -0.0), and not NaN,
# exactly when its bits read as an int16 are <= this (sign bit set, exponent and mantissa at most
# those of infinity; a NaN with its sign set reads -127 ... -1).
_BF16_NEG_INF_BITS = -128


class BF16ReLU(nn.ReLU):
    """``nn.ReLU`` that computes bfloat16 inputs on their bits: equal to ``torch.relu`` for every
    bfloat16 value (NaN kept; -0.0 comes out +0.0, equal to it), faster (module docstring).

    Shapes: any, unchanged; float32 and other dtypes, and a bfloat16 input that autograd records
    (the int16 view has no gradient), go through ``nn.ReLU`` itself.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != torch.bfloat16 or (torch.is_grad_enabled() and x.requires_grad):
            return super().forward(x)
        bits = x.view(torch.int16)
        if self.inplace:
            return torch.threshold_(bits, _BF16_NEG_INF_BITS, 0).view(torch.bfloat16)
        return torch.threshold(bits, _BF16_NEG_INF_BITS, 0).view(torch.bfloat16)


def check_precision(precision: str, source: str = "precision") -> PrecisionName:
    """``precision`` if it is one of :data:`PRECISIONS`.

    Args:
        precision: the value to check.
        source: the argument or option it came from, for the message ("--precision").

    Raises:
        InputError: any other value (a ``ValueError``: one line, exit status 2 from a CLI).
    """
    if precision not in PRECISIONS:
        problem = f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}"
        raise InputError(source, problem)
    return precision  # type: ignore[return-value]


def _is_plain(module: nn.Module) -> bool:
    """True for a conv layer that convolves with torch's own ``_conv_forward`` (its ``forward`` may
    pad first, as :class:`~convsuite.core_ops.layers.HEALPixConv2d`; FFT subclasses are excluded)
    or an ``nn.Linear`` with torch's own forward."""
    base = next((cls for cls in _DENSE if isinstance(module, cls)), None)
    if base is None:
        return False
    kind = type(module)
    if base is nn.Linear:
        return kind.forward is base.forward
    own = getattr(base, "_conv_forward", None)
    if own is None:  # transposed convolutions: no _conv_forward, the forward must be torch's
        return kind.forward is base.forward
    return kind._conv_forward is own


def _is_block(module: nn.Module) -> bool:
    """True for a layer that assembles its convolution weight in code and can cache it for
    inference: it defines ``cache_inference_weight(dtype)`` (core-ops'
    :class:`~convsuite.core_ops.layers.PseudoComplexConv2d`, whose block weight
    ``[[Wr, -Wi], [Wi, Wr]]`` convolves 2 ``in_channels`` real channels into 2 ``out_channels``)."""
    return callable(getattr(module, "cache_inference_weight", None))


def _is_dense(module: nn.Module, min_channels: int = MIN_GROUP_CHANNELS) -> bool:
    """True for a plain conv/linear (or block-weight) layer wide enough for bf16 to pay: at least
    ``min_channels`` channels per group."""
    if isinstance(module, nn.Linear) and _is_plain(module):
        return True
    if _is_block(module):
        # Real channels per group (twice the complex ones) on either side: a pseudo-complex
        # network's stem (few inputs) and head (few outputs) convert too, so that their
        # neighbours' bf16 feature maps are not promoted back to float32 when concatenated.
        real = 2 * max(module.in_channels, module.out_channels) // module.groups
        return real >= min_channels
    if not _is_plain(module):
        return False
    groups = module.groups
    return (
        module.in_channels // groups >= min_channels
        and module.out_channels // groups >= min_channels
    )


def _channel_floors(module: nn.Module) -> dict[nn.Module, int]:
    """Each submodule's :data:`BF16_MIN_CHANNELS`: its own, else its parent's, else
    :data:`MIN_GROUP_CHANNELS`.

    Raises:
        ValueError: a module sets it to anything but a positive int (the message names it).
    """
    floors: dict[nn.Module, int] = {}

    def visit(sub: nn.Module, name: str, floor: int) -> None:
        floor = getattr(sub, BF16_MIN_CHANNELS, floor)
        if type(floor) is not int or floor < 1:
            where = f"{type(sub).__name__} ({name or 'the model'})"
            raise ValueError(f"{where}: {BF16_MIN_CHANNELS} must be a positive int, got {floor!r}")
        floors[sub] = floor
        for child_name, child in sub.named_children():
            visit(child, f"{name}.{child_name}" if name else child_name, floor)

    visit(module, "", MIN_GROUP_CHANNELS)
    return floors


def _replace_relus(module: nn.Module) -> None:
    """Every ``nn.ReLU`` (exactly that class) in ``module`` replaced by a :class:`BF16ReLU`."""
    for parent in module.modules():
        for name, child in parent._modules.items():
            if type(child) is nn.ReLU:
                parent._modules[name] = BF16ReLU(inplace=child.inplace)


def _memory_format(dims: int) -> torch.memory_format:
    return {4: torch.channels_last, 5: torch.channels_last_3d}.get(dims, torch.contiguous_format)


# How many bf16 regions the current thread is inside: converted layers keep their bfloat16 output
# there, and the outermost region casts its output back.
_DEPTH = threading.local()


def _depth() -> int:
    return getattr(_DEPTH, "value", 0)


def _first_float_dtype(args: tuple, kwargs: dict) -> torch.dtype:
    """The dtype of the first floating tensor argument (float32 when there is none)."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, Tensor) and value.is_floating_point():
            return value.dtype
    return torch.float32


def _cast_input(module: nn.Module, args: tuple) -> tuple:
    """Forward pre-hook of a converted layer: the first input to bfloat16 (channels-last for
    2-D/3-D feature maps)."""
    x = args[0]
    module._convsuite_return_dtype = x.dtype  # type: ignore[assignment]
    if isinstance(module, nn.Linear):
        return (x.to(torch.bfloat16), *args[1:])
    return (x.to(torch.bfloat16, memory_format=_memory_format(x.dim())), *args[1:])


def _cast_output(module: nn.Module, args: tuple, output: Tensor) -> Tensor:
    """Forward hook of a converted layer: outside a bf16 region, the output back to the dtype the
    layer was called with; inside one it stays bfloat16 for the next layer."""
    if _depth():
        return output
    return output.to(module._convsuite_return_dtype)


def _cast_to_weight(module: nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook of a float32 conv/linear inside a region: a bfloat16 input to float32
    (to the dtype of the layer's first parameter)."""
    x = args[0]
    if isinstance(x, Tensor) and x.dtype == torch.bfloat16:
        return (x.to(next(module.parameters()).dtype), *args[1:])
    return None


def _caller_dtypes(module: nn.Module) -> list[torch.dtype]:
    """This thread's stack of the dtypes ``module`` (a region) was called with: thread-local like
    the region depth, so threads running one model do not pop each other's dtypes."""
    if not hasattr(_DEPTH, "dtypes"):
        _DEPTH.dtypes = {}
    return _DEPTH.dtypes.setdefault(id(module), [])


def _enter_region(module: nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook of a bf16 region: remember the caller's dtype, count the region."""
    _caller_dtypes(module).append(_first_float_dtype(args, kwargs))
    _DEPTH.value = _depth() + 1


def _leave_region(module: nn.Module, args: tuple, kwargs: dict, output: object) -> object:
    """Forward hook of a bf16 region (also run on an exception): the outermost one casts every
    bfloat16 tensor of its output back to the caller's dtype, in torch's default layout."""
    _DEPTH.value = max(_depth() - 1, 0)
    stack = _caller_dtypes(module)
    dtype = stack.pop()
    if not stack:
        del _DEPTH.dtypes[id(module)]
    if _depth() or dtype == torch.bfloat16:
        return output
    return _cast_tree(output, dtype)


def _cast_tree(value: object, dtype: torch.dtype) -> object:
    """``value`` with each bfloat16 tensor in it (nested tuples, named tuples, lists, dicts) cast."""
    if isinstance(value, Tensor):
        if value.dtype != torch.bfloat16:
            return value
        return value.to(dtype, memory_format=torch.contiguous_format)
    if isinstance(value, tuple):
        items = [_cast_tree(item, dtype) for item in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, list):
        return [_cast_tree(item, dtype) for item in value]
    if isinstance(value, dict):  # a copy keeps the mapping's type (OrderedDict, defaultdict...)
        cast = copy.copy(value)
        for key, item in value.items():
            cast[key] = _cast_tree(item, dtype)
        return cast
    return value


# Norms whose CPU kernels take a bfloat16 input with float32 weights and running statistics.
_MIXED_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
)


def _region_safe(module: nn.Module) -> bool:
    """True when ``module``'s own forward computes correctly on bfloat16 feature maps.

    That is a converted layer, a plain conv/linear left in float32 (it gets a hook that casts its
    input), a norm of :data:`_MIXED_NORMS`, or a module without float32 parameters or buffers of
    its own (activations, pools, containers, custom blocks that only call their children and
    tensor functions). A module holding float32 weights it uses itself (FFT, graph, sparse,
    DCLS layers) is not, nor one that sets :data:`KEEP_FP32`.
    """
    if getattr(module, KEEP_FP32, False):
        return False
    if getattr(module, _MARK, None) == "bf16" or _is_plain(module) or _is_block(module):
        return True
    if isinstance(module, _MIXED_NORMS):
        return True
    own = [*module._parameters.values(), *module._buffers.values()]
    return not any(t is not None and t.dtype in (torch.float32, torch.float64) for t in own)


def _bf16_regions(module: nn.Module) -> list[nn.Module]:
    """Every non-leaf module whose whole subtree is :func:`_region_safe` and holds a converted
    layer: inside it activations stay bfloat16 from layer to layer (nested regions too, so that a
    sub-network called on its own, such as ``model.encoder(x)``, is one)."""
    safe: dict[nn.Module, bool] = {}

    def visit(sub: nn.Module) -> bool:
        results = [visit(child) for child in sub.children()]
        safe[sub] = _region_safe(sub) and all(results)
        return safe[sub]

    visit(module)
    return [
        sub
        for sub, ok in safe.items()
        if ok and getattr(sub, _MARK, None) != "bf16" and bf16_layers(sub)
    ]


def fold_batch_norms(module: nn.Module) -> int:
    """Fold each eval-mode batch norm that directly follows a plain conv in an ``nn.Sequential``.

    ``conv -> bn`` becomes ``conv' -> Identity`` with ``w' = w * g / sqrt(var + eps)`` per output
    channel and ``b' = (b - mean) * g / sqrt(var + eps) + beta``: the same function in eval mode.
    Transposed convolutions and norms without running statistics are left alone. Returns the
    number of norms folded.
    """
    folded = 0
    for parent in module.modules():
        if not isinstance(parent, nn.Sequential):
            continue
        names = list(parent._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, norm = parent._modules[first], parent._modules[second]
            if not (
                isinstance(conv, nn.Conv1d | nn.Conv2d | nn.Conv3d)
                and _is_plain(conv)
                and isinstance(norm, nn.modules.batchnorm._BatchNorm)
                and norm.running_mean is not None
                and norm.num_features == conv.out_channels
                and conv.weight.dtype in (torch.float32, torch.float64)
            ):
                continue
            with torch.no_grad():
                scale = torch.rsqrt(norm.running_var + norm.eps)
                if norm.weight is not None:
                    scale = scale * norm.weight
                shift = -norm.running_mean * scale
                if norm.bias is not None:
                    shift = shift + norm.bias
                if conv.bias is not None:
                    shift = shift + conv.bias * scale
                conv.weight.mul_(scale.reshape(-1, *([1] * (conv.weight.dim() - 1))))
                conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)
            parent._modules[second] = nn.Identity()
            folded += 1
    return folded


def bf16_layers(module: nn.Module) -> list[str]:
    """Names of the layers that :func:`prepare_for_inference` converted to bfloat16."""
    return [name for name, sub in module.named_modules() if getattr(sub, _MARK, None) == "bf16"]


def prepare_for_inference(module: nn.Module, precision: str = "fp32") -> nn.Module:
    """Put ``module`` in eval mode and, for ``"bf16"``, convert its dense layers (see the module doc).

    Args:
        module: any ``nn.Module``; converted in place.
        precision: ``"fp32"`` (only ``eval()``: outputs unchanged) or ``"bf16"``.

    Returns:
        ``module``, for chaining. Calling it again with the same precision changes nothing.

    Raises:
        ValueError: unknown precision, or ``"fp32"`` asked of a model already converted to bf16.
    """
    check_precision(precision)
    module.eval()
    converted = bf16_layers(module)
    if precision == "fp32":
        if converted:
            raise ValueError(
                f"model was prepared for bf16 ({len(converted)} layers); load it again for fp32"
            )
        return module
    if converted:
        return module
    fold_batch_norms(module)
    _replace_relus(module)
    for sub, floor in _channel_floors(module).items():
        if not _is_dense(sub, floor):
            continue
        if _is_plain(sub):
            sub.to(torch.bfloat16)
            weight = sub.weight
            weight.data = weight.data.contiguous(memory_format=_memory_format(weight.dim()))
        else:  # float32 parameters kept, a bf16 block weight cached beside them
            sub.cache_inference_weight(torch.bfloat16)
        sub.register_forward_pre_hook(_cast_input)
        sub.register_forward_hook(_cast_output)
        setattr(sub, _MARK, "bf16")
    for sub in module.modules():
        if (_is_plain(sub) or _is_block(sub)) and getattr(sub, _MARK, None) != "bf16":
            sub.register_forward_pre_hook(_cast_to_weight)
    # Inside a region converted layers leave their outputs bf16; the outermost region casts back.
    for region in _bf16_regions(module):
        region.register_forward_pre_hook(_enter_region, with_kwargs=True)
        region.register_forward_hook(_leave_region, with_kwargs=True, always_call=True)
    _LOG.debug("bf16 inference: %d dense layers converted", len(bf16_layers(module)))
    return module


@functools.cache
def _bf16_native() -> bool:
    """Whether oneDNN runs bf16 natively on this CPU (AVX512-BF16/AMX), not emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def inference_mode(precision: str = "fp32") -> Iterator[None]:
    """``torch.inference_mode()`` for running a model prepared by :func:`prepare_for_inference`.

    Also, once per process, applies :func:`~convsuite.core_ops.runtime.keep_freed_memory` (one
    log line; see :func:`~convsuite.core_ops.runtime.keep_freed_memory_on_first_use`), and for ``"bf16"`` on a CPU without native bf16 units logs a warning that it will
    be slower than float32.

    Raises:
        ValueError: unknown precision.
    """
    check_precision(precision)
    keep_freed_memory_on_first_use()
    if precision == "bf16" and not _bf16_native():
        _warn_emulated()
    with torch.inference_mode():
        yield


@functools.cache
def _warn_emulated() -> None:
    _LOG.warning("this CPU has no native bf16 units: --precision bf16 will be slower than fp32")
